/**
 * A client worker for bench/freshness.ts: opens its share of the clients, each
 * subscribed to every one of the same `market:*` streams (conflated with
 * `params.max_rate`, or not), and measures what each client's screen would show:
 *   - the live frames and events it received inside the window, per client;
 *   - the age of the newest price it holds per symbol, sampled at fixed moments
 *     (every SAMPLE_MS of wall time): the moment minus that tick's scheduled publish
 *     time (`data.sched`, see producer.ts), so a late producer counts against freshness.
 * Driven over IPC (see workers.ts); never inside the server under test.
 */
import { WebSocket } from 'ws';
import { encodeHistogram, newHistogram, now } from './common.js';
import { isLiveFrame, scheds } from './scan.js';

/** Orchestrator → worker. */
export type FreshnessCommand =
  | { readonly op: 'connect'; readonly port: number; readonly clients: number; readonly streams: readonly string[]; readonly maxRate: number | undefined }
  /** Count frames and events received in [start, end) and sample ages at start, start + SAMPLE_MS, … */
  | { readonly op: 'window'; readonly start: number; readonly end: number }
  | { readonly op: 'collect' };

/** Worker → orchestrator. */
export type FreshnessReply =
  | { readonly op: 'connected'; readonly count: number; readonly failed: number }
  | {
      readonly op: 'collected';
      /** Live frames and events received in the window, one entry per client. */
      readonly frames: readonly number[];
      readonly events: readonly number[];
      /** Ages in microseconds, one value per client, symbol and sample moment (HDR, see common.ts). */
      readonly ages: string;
      /** Sockets the server closed (e.g. slow consumer). */
      readonly closedByServer: number;
    }
  | { readonly op: 'error'; readonly message: string };

/** What a screen refreshing 20 times a second would show each time. */
const SAMPLE_MS = 50;
const WS_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true } as const;
const SYMBOL = Buffer.from('"symbol":"');
const QUOTE = 0x22;

let symbolIndex = new Map<string, number>();
let clients: Client[] = [];
let windowStart = Infinity;
let windowEnd = -Infinity;
let nextSampleAt = Infinity;
let ages = newHistogram();
let closedByServer = 0;

/**
 * Records every sample moment that has passed by `t`. Called before each frame is
 * handled (and by a timer when none come): the held prices cannot have changed since
 * the last frame, so they are what each client held at those moments, even when this
 * process was too busy to look at the moment itself.
 */
function sampleDue(t: number): void {
  while (nextSampleAt <= t && nextSampleAt < windowEnd) {
    for (const client of clients) {
      if (client.closed) continue;
      for (const sched of client.newest) if (sched > 0) ages.recordValue(Math.max(1, Math.round((nextSampleAt - sched) * 1000)));
    }
    nextSampleAt += SAMPLE_MS;
  }
}

/** The symbol of each tick in a frame, in order (each event's `data.symbol`, read from the bytes). */
function symbolsOf(buf: Buffer, out: string[]): string[] {
  let i = buf.indexOf(SYMBOL);
  while (i !== -1) {
    const start = i + SYMBOL.length;
    const end = buf.indexOf(QUOTE, start);
    out.push(buf.toString('latin1', start, end));
    i = buf.indexOf(SYMBOL, end);
  }
  return out;
}

class Client {
  /** Scheduled publish time of the newest tick held, per symbol (0: none yet). */
  readonly newest: Float64Array;
  frames = 0;
  events = 0;
  closed = false;
  readonly #found: number[] = [];
  readonly #symbols: string[] = [];

  constructor(
    private readonly port: number,
    private readonly streams: readonly string[],
    private readonly maxRate: number | undefined,
  ) {
    this.newest = new Float64Array(streams.length);
  }

  /** Connects and subscribes to every stream; resolves once all are subscribed. */
  open(): Promise<void> {
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/ws`, WS_OPTIONS);
    return new Promise<void>((resolve, reject) => {
      let subscribed = 0;
      ws.on('message', (buf: Buffer) => {
        const t = now();
        sampleDue(t);
        if (isLiveFrame(buf)) return this.#live(buf, t);
        const msg = JSON.parse(buf.toString()) as { type: string; error?: { message: string } };
        if (msg.type === 'connected') {
          const params = this.maxRate === undefined ? undefined : { max_rate: this.maxRate };
          for (const stream of this.streams) ws.send(JSON.stringify({ id: stream, type: 'subscribe', data: { stream, params } }));
        } else if (msg.type === 'subscribed' && ++subscribed === this.streams.length) {
          resolve();
        } else if (msg.type === 'error' && subscribed < this.streams.length) {
          reject(new Error(msg.error?.message ?? 'error'));
        }
      });
      ws.on('error', (err) => {
        if (subscribed < this.streams.length) reject(err);
      });
      ws.on('close', () => {
        if (subscribed < this.streams.length) reject(new Error('closed before subscribed'));
        this.closed = true;
        closedByServer++;
      });
    });
  }

  #live(buf: Buffer, t: number): void {
    this.#found.length = 0;
    this.#symbols.length = 0;
    const times = scheds(buf, this.#found);
    const symbols = symbolsOf(buf, this.#symbols);
    for (let i = 0; i < times.length; i++) {
      const k = symbolIndex.get(symbols[i]!);
      if (k !== undefined && times[i]! > this.newest[k]!) this.newest[k] = times[i]!;
    }
    if (t >= windowStart && t < windowEnd) {
      this.frames++;
      this.events += times.length;
    }
  }
}

/** Opens clients a chunk at a time, so the server's accept backlog is not the thing measured. */
async function connectAll(cmd: Extract<FreshnessCommand, { op: 'connect' }>): Promise<{ count: number; failed: number }> {
  symbolIndex = new Map(cmd.streams.map((stream, i) => [stream.slice(stream.indexOf(':') + 1), i]));
  clients = Array.from({ length: cmd.clients }, () => new Client(cmd.port, cmd.streams, cmd.maxRate));
  let failed = 0;
  const CHUNK = 100;
  for (let i = 0; i < clients.length; i += CHUNK) {
    const results = await Promise.allSettled(clients.slice(i, i + CHUNK).map((c) => c.open()));
    failed += results.filter((r) => r.status === 'rejected').length;
  }
  return { count: clients.length - failed, failed };
}

const reply = (message: FreshnessReply): void => void process.send?.(message);

// Moments when no frame comes (a conflated client between frames) are sampled by this timer.
setInterval(() => sampleDue(now()), SAMPLE_MS / 2);

process.on('message', (cmd: FreshnessCommand) => {
  void (async () => {
    try {
      switch (cmd.op) {
        case 'connect':
          reply({ op: 'connected', ...(await connectAll(cmd)) });
          break;
        case 'window':
          ages = newHistogram();
          for (const client of clients) client.frames = client.events = 0;
          windowStart = cmd.start;
          windowEnd = cmd.end;
          nextSampleAt = cmd.start;
          break;
        case 'collect':
          sampleDue(now());
          reply({ op: 'collected', frames: clients.map((c) => c.frames), events: clients.map((c) => c.events), ages: encodeHistogram(ages), closedByServer });
          break;
      }
    } catch (err) {
      reply({ op: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  })();
});

// The orchestrator owns this process: when it goes, so do we.
process.on('disconnect', () => process.exit(0));
