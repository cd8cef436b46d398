/**
 * Frames serialized once for many connections. Only a frame's head differs between
 * connections (its `sequence_number`); the rest is encoded once and shared.
 */
import { eventForSession, type ServerMessageFields, type ServerMessageType, type StreamKind } from '@tradesync/protocol';
import type { StoredEvent } from '../engines/engine.js';

/**
 * A live event as the fan-out queues it: ONE object per event, shared by the queue of
 * every subscriber (measured: a `{stream, offset, json}` per connection per event was
 * a visible share of the GC time at 1,000 clients, see docs/BENCHMARKS.md).
 */
export interface PendingEvent {
  readonly stream: string;
  /** The stream's kind, for the per-kind counts of `initial_state.connection`. */
  readonly kind: StreamKind;
  readonly offset: number;
  /** For a conflatable stream, the entity the event replaces (see conflationKey): a conflated subscription keeps the newest per key. */
  readonly key: string | undefined;
  /** The event itself, and the session of the entity it touched (undefined: account-wide), for session-scoped subscriptions. */
  readonly event: StoredEvent;
  readonly session: string | null | undefined;
  /** The event serialized once for every connection: `{"type":…,"stream":…,…}`. */
  readonly json: string;
  /** `json` without its opening brace, UTF-8 encoded once, made by the first connection that sends it alone. */
  tail: Buffer | undefined;
}

/**
 * The `batch_update` frames of one fan-out flush. In a fan-out every subscriber of a
 * stream gets the same events in the same flush, so the 1,000 frames of one flush
 * differ only in their `sequence_number`: the joined, encoded `,"events":[…]}` tail is
 * built once and reused while the next connection's events are the same objects.
 * (Measured: joining and encoding it per connection was the top self-time function,
 * `Connection.flush`, and most of the GC at 1,000 events/s × 1,000 clients.)
 *
 * One instance belongs to one flush of one gateway's fan-out, so nothing is shared
 * between gateways in a process, and the cache is dropped with the flush.
 */
export class BatchFrames {
  #last: readonly PendingEvent[] = [];
  #lastTail: Buffer | undefined;

  /** `timestamp`: the one time every `batch_update` of this flush carries. */
  constructor(readonly timestamp: string = new Date().toISOString()) {}

  /** The shared tail for these events: the cached one when they are the same objects as last time. */
  tail(events: readonly PendingEvent[]): Buffer {
    const last = this.#last;
    if (this.#lastTail && events.length === last.length && events.every((e, i) => e === last[i])) return this.#lastTail;
    let body = ',"events":[';
    for (let i = 0; i < events.length; i++) body += (i === 0 ? '' : ',') + events[i]!.json;
    this.#last = events;
    this.#lastTail = Buffer.from(body + ']}');
    return this.#lastTail;
  }
}

/**
 * A server message sent unasked to many connections at once (a snapshot in place after
 * a stream's epoch reset): its fields are serialized and encoded once, typed like
 * `Connection.send`; each connection adds `{"type":…,"sequence_number":…,"timestamp":…`.
 */
export class SharedMessage<T extends ServerMessageType = ServerMessageType> {
  /** `,"field":…}`: everything after the envelope, UTF-8 encoded once. */
  readonly tail: Buffer;

  constructor(
    readonly type: T,
    fields: ServerMessageFields<T>,
  ) {
    const json = JSON.stringify(fields);
    this.tail = Buffer.from(json === '{}' ? '}' : `,${json.slice(1)}`);
  }
}

/** Per event, its variants for sessions that get it changed (a `full_update` with their instances only). */
const variants = new WeakMap<PendingEvent, Map<string, PendingEvent>>();

/**
 * The event as a subscription of `session` gets it (see the protocol's eventForSession):
 * the same shared object, a variant serialized once per session, or undefined.
 */
export function pendingForSession(pending: PendingEvent, session: string): PendingEvent | undefined {
  const given = eventForSession(pending.kind, pending.event, session, pending.session);
  if (given === pending.event || given === undefined) return given && pending;
  let bySession = variants.get(pending);
  if (!bySession) variants.set(pending, (bySession = new Map<string, PendingEvent>()));
  let variant = bySession.get(session);
  if (!variant) bySession.set(session, (variant = { ...pending, event: given, json: serializeEvent(given), tail: undefined }));
  return variant;
}

/** An event as every subscriber receives it, serialized once. */
/**
 * Each event's JSON, made once and reused: by every live frame that carries it and by
 * every `subscribed` reply that replays it (a reconnect storm replays the same recent
 * events to a thousand clients). Bounded by count and by size (the oldest go first), and
 * only events up to 16 K characters, so memory stays flat however many streams, windows
 * and large events there are.
 */
const EVENT_JSON_MAX_ENTRIES = 10_000;
const EVENT_JSON_MAX_CHARS = 2 * 2 ** 20;
/** A larger event is serialized each time it is needed: kept, it would only hold memory old (and it is rare). */
const EVENT_JSON_MAX_ENTRY_CHARS = 16 * 1024;
const eventJsonCache = new Map<StoredEvent, string>();
let eventJsonChars = 0;

export function serializeEvent(event: StoredEvent): string {
  let json = eventJsonCache.get(event);
  if (json !== undefined) return json;
  json = eventJson(event);
  if (json.length > EVENT_JSON_MAX_ENTRY_CHARS) return json;
  eventJsonCache.set(event, json);
  eventJsonChars += json.length;
  while (eventJsonCache.size > EVENT_JSON_MAX_ENTRIES || eventJsonChars > EVENT_JSON_MAX_CHARS) {
    const [oldest, text] = eventJsonCache.entries().next().value!;
    eventJsonCache.delete(oldest);
    eventJsonChars -= text.length;
  }
  return json;
}

function eventJson(event: StoredEvent): string {
  return JSON.stringify({
    type: event.type,
    stream: event.stream,
    epoch: event.epoch,
    offset: event.offset,
    timestamp: event.timestamp,
    data: event.data,
  });
}

/** `head` (ASCII: digits, names, an ISO time) followed by a shared pre-encoded tail: one allocation and one copy. */
export function withHead(head: string, tail: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(head.length + tail.length);
  frame.write(head, 0, 'latin1');
  tail.copy(frame, head.length);
  return frame;
}

/**
 * One complete server-to-client WebSocket text frame (RFC 6455 §5.2: FIN, opcode 1, no
 * mask, then the payload length in 7, 7+16 or 7+64 bits) whose payload is `head` (ASCII)
 * followed by `tail`: the frame header, the connection's head and the shared bytes in
 * one allocation, so the socket gets one buffer and one write.
 */
export function textFrame(head: string, tail: Buffer): Buffer {
  const length = head.length + tail.length;
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81;
  if (headerBytes === 2) {
    frame[1] = length;
  } else if (headerBytes === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  frame.write(head, headerBytes, 'latin1');
  tail.copy(frame, headerBytes + head.length);
  return frame;
}
