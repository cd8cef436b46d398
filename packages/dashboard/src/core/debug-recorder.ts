import type { DebugMessage, DebugState } from './stores.js';

/**
 * What the debug panel and the latency probe show: the last messages, events per
 * second, wire latency (server timestamp → received) and event-to-screen latency
 * (server timestamp → the frame showing the event is on screen). The desk builds a
 * recorder only while the debug panel is open or the probe is on: otherwise none of
 * this is counted, and a thousand events a second cost nothing here.
 */
interface DebugRecorderOptions {
  readonly now: () => number;
  /** Keeps every event-to-screen latency (the benchmark reads it on `window`). */
  readonly probe?: { latencies: number[] };
}

export const DEBUG_MESSAGES = 200;
/** The probe drops its older half past this many latencies. */
export const PROBE_LIMIT = 200_000;
/** Samples kept per second at most (a median of more says nothing new). */
const SAMPLE_LIMIT = 5000;

/** The part of a message or event the recorder reads. */
interface Timed {
  readonly timestamp?: unknown;
}

export class DebugRecorder {
  readonly #now: () => number;
  readonly #probe: { latencies: number[] } | undefined;
  readonly #messages = new Array<Readonly<Record<string, unknown>>>(DEBUG_MESSAGES);
  readonly #messageTimes = new Array<number>(DEBUG_MESSAGES).fill(0);
  #messageHead = 0;
  #messageCount = 0;
  #eventCount = 0;
  #wireSamples: number[] = [];
  #screenSamples: number[] = [];
  /** Server times of the events received since the last frame. */
  #pendingEventTimes: number[] = [];
  /** Event times waiting for the frame that shows them to be on screen. */
  readonly #frameEventTimes = new Map<number, number[]>();

  constructor(options: DebugRecorderOptions) {
    this.#now = options.now;
    this.#probe = options.probe;
  }

  /** Every message the client received. */
  message(message: Readonly<Record<string, unknown>>): void {
    // A thousand messages a second: keep only the reference and its time (a ring, no
    // copies); the rows are built once a second, and only while the panel is open.
    const at = this.#now();
    this.#messages[this.#messageHead] = message;
    this.#messageTimes[this.#messageHead] = at;
    this.#messageHead = (this.#messageHead + 1) % DEBUG_MESSAGES;
    if (this.#messageCount < DEBUG_MESSAGES) this.#messageCount++;
    const sent = serverTime(message);
    if (sent !== undefined && this.#wireSamples.length < SAMPLE_LIMIT) this.#wireSamples.push(at - sent);
  }

  /** Every live event, when it arrives (before the frame that shows it). */
  event(event: Timed): void {
    this.#eventCount++;
    const sent = serverTime(event);
    if (sent !== undefined) this.#pendingEventTimes.push(sent);
  }

  /** A frame of data is being written: the events received so far are in it. */
  frame(frame: number): void {
    if (this.#pendingEventTimes.length === 0) return;
    this.#frameEventTimes.set(frame, this.#pendingEventTimes);
    this.#pendingEventTimes = [];
  }

  /** The page committed `frame` to the screen: every event of it (and of earlier frames) is visible. */
  committed(frame: number): void {
    const now = this.#now();
    const probe = this.#probe;
    for (const [f, times] of this.#frameEventTimes) {
      if (f > frame) continue;
      for (const t of times) {
        const latency = now - t;
        this.#screenSamples.push(latency);
        if (probe) {
          probe.latencies.push(latency);
          if (probe.latencies.length > PROBE_LIMIT) probe.latencies.splice(0, PROBE_LIMIT / 2);
        }
      }
      this.#frameEventTimes.delete(f);
    }
    if (this.#screenSamples.length > SAMPLE_LIMIT) this.#screenSamples = this.#screenSamples.slice(-1000);
  }

  /** The debug store for the second that ended; starts counting the next one. */
  report(context: { readonly offsets: DebugState['offsets']; readonly frames: number; readonly withMessages: boolean }): DebugState {
    const state: DebugState = {
      messages: context.withMessages ? this.#lastMessages() : [],
      eventsPerSecond: this.#eventCount,
      wireLatencyMs: median(this.#wireSamples),
      screenLatencyMs: median(this.#screenSamples),
      offsets: context.offsets,
      frames: context.frames,
    };
    this.#eventCount = 0;
    this.#wireSamples = [];
    this.#screenSamples = [];
    return state;
  }

  /** The last messages, oldest first, as the debug panel lists them. */
  #lastMessages(): DebugMessage[] {
    const out: DebugMessage[] = [];
    const start = (this.#messageHead - this.#messageCount + DEBUG_MESSAGES) % DEBUG_MESSAGES;
    for (let k = 0; k < this.#messageCount; k++) {
      const i = (start + k) % DEBUG_MESSAGES;
      const message = this.#messages[i]!;
      out.push({
        at: this.#messageTimes[i]!,
        type: String(message.type),
        ...(typeof message.stream === 'string' ? { stream: message.stream } : {}),
        ...(typeof message.offset === 'number' ? { offset: message.offset } : {}),
        raw: message,
      });
    }
    return out;
  }
}

/** A message's server timestamp in ms, when it has a readable one. */
function serverTime(message: Timed): number | undefined {
  if (typeof message.timestamp !== 'string') return undefined;
  const at = Date.parse(message.timestamp);
  return Number.isNaN(at) ? undefined : at;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
