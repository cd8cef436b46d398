import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CloseCode, type ErrorCode } from '@tradesync/protocol';
import type { Principal } from '../auth.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { TokenBucket } from './ratelimit.js';

/** What a connection remembers of one subscription. */
export interface Subscription {
  readonly stream: string;
  readonly sessionId: string | undefined;
  /**
   * The highest offset this connection has been given for the stream (in the
   * `subscribed` reply or a live event). Live events at or below it are dropped, so
   * a subscriber never sees a duplicate however publishes and replies interleave.
   */
  delivered: number;
  epoch: string;
}

/**
 * A live event as the fan-out queues it: ONE object per event, shared by the queue of
 * every subscriber (measured: a `{stream, offset, json}` per connection per event was
 * a visible share of the GC time at 1,000 clients, see docs/BENCHMARKS.md).
 */
export interface PendingEvent {
  readonly stream: string;
  readonly offset: number;
  /** The event serialized once for every connection: `{"type":…,"stream":…,…}`. */
  readonly json: string;
  /** `json` without its opening brace, UTF-8 encoded once, made by the first connection that sends it alone. */
  tail: Buffer | undefined;
}

/** Live frames are built as Buffers (see `flush`) but are JSON text: send them as text frames. */
const TEXT_FRAME = { binary: false } as const;
const FIRST_FRAGMENT = { binary: false, fin: false } as const;
const LAST_FRAGMENT = { binary: false, fin: true } as const;

/**
 * From this size on, a live frame's shared tail is not copied per connection: the frame
 * goes out as one text message in two fragments, the connection's own head and the
 * tail every subscriber shares. Measured: 20 subscribers that stopped reading while
 * 50 MB was published held a private copy each (RSS 141 → 410 MB); sharing holds one.
 * Below it, one small copy is cheaper than a second frame header.
 */
const SHARE_TAIL_BYTES = 2048;

/**
 * The `,"events":[…]}` tail of the last `batch_update` built. In a fan-out every
 * subscriber of a stream gets the same events in the same flush, so the 1,000 frames
 * of one flush differ only in their `sequence_number`: the joined, encoded body is
 * built once and reused while the next connection's events are the same objects.
 * (Measured: joining and encoding it per connection was the top self-time function,
 * `Connection.flush`, and most of the GC at 1,000 events/s × 1,000 clients.)
 */
let lastBatch: readonly PendingEvent[] = [];
let lastBatchTail: Buffer | undefined;

function batchTail(events: readonly PendingEvent[]): Buffer {
  if (lastBatchTail && events.length === lastBatch.length && events.every((e, i) => e === lastBatch[i])) return lastBatchTail;
  let body = ',"events":[';
  for (let i = 0; i < events.length; i++) body += (i === 0 ? '' : ',') + events[i]!.json;
  lastBatch = events;
  lastBatchTail = Buffer.from(body + ']}');
  return lastBatchTail;
}

/** `head` (ASCII: digits, names, an ISO time) followed by a shared pre-encoded tail: one allocation and one copy. */
function withHead(head: string, tail: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(head.length + tail.length);
  frame.write(head, 0, 'latin1');
  tail.copy(frame, head.length);
  return frame;
}

export interface ConnectionOptions {
  readonly maxBufferedBytes: number;
  readonly messagesPerSecond: number;
  readonly messageBurst: number;
  readonly remoteAddress: string | undefined;
}

/**
 * One client socket: numbering of everything sent (`connected` is 0, then +1 per
 * message), its subscriptions, the live events queued for its next frame, its rate
 * limit and the slow-consumer guard.
 */
export class Connection {
  readonly id = randomUUID();
  readonly connectedAt = new Date();
  readonly subscriptions = new Map<string, Subscription>();
  readonly limiter: TokenBucket;
  readonly log: Logger;
  #principal: Principal;
  #authenticated: boolean;
  /** Wall-clock time the peer was last heard from (for the admin list). */
  lastSeen = Date.now();
  /** Monotonic time (performance.now) the peer was last heard from: any frame or pong. */
  lastHeard = performance.now();
  /** Monotonic time of the last heartbeat ping (the connection's start counts as one). */
  lastPing = performance.now();
  messagesIn = 0;
  framesOut = 0;
  eventsOut = 0;
  /** Messages dropped by the rate limit in the current abuse window, and when it began. */
  rateLimitedInWindow = 0;
  rateWindowStart = 0;
  /** The processing of the latest admitted frame: the next one starts after it (see MessageHandlers.handle). */
  inbox: Promise<void> = Promise.resolve();
  #seq = 0;
  #pending: PendingEvent[] = [];
  #corked = 0;
  #closed = false;
  #expiry: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: WebSocket,
    principal: Principal,
    authenticated: boolean,
    private readonly options: ConnectionOptions,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.#principal = principal;
    this.#authenticated = authenticated;
    this.limiter = new TokenBucket(options.messagesPerSecond, options.messageBurst);
    this.log = log.child({ connection_id: this.id });
    this.#armExpiry();
  }

  get principal(): Principal {
    return this.#principal;
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  get remoteAddress(): string | undefined {
    return this.options.remoteAddress;
  }

  /**
   * The connection now acts for `principal` (an `auth` message, possibly a refresh
   * before the old token runs out). The connection closes with 4101 the moment the
   * token expires: a timer, not a heartbeat check, so an expired token is never served.
   */
  setPrincipal(principal: Principal): void {
    this.#principal = principal;
    this.#authenticated = true;
    this.#armExpiry();
  }

  /** True (and the connection closing) once its token has expired: checked per message as well as by the timer. */
  expired(now = Date.now()): boolean {
    const expiresAt = this.#principal.expiresAt;
    if (expiresAt === null || expiresAt > now) return false;
    this.#expire();
    return true;
  }

  #armExpiry(): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    const expiresAt = this.#principal.expiresAt;
    if (expiresAt === null || this.#closed) return;
    // setTimeout holds at most 2^31-1 ms (~24.8 days); a longer token re-arms on the way.
    const delay = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    this.#expiry = setTimeout(() => (this.expired() ? undefined : this.#armExpiry()), delay);
    this.#expiry.unref();
  }

  #expire(): void {
    if (this.#closed) return;
    this.metrics.tokenExpiryCloses.inc();
    this.log.info({ subject: this.#principal.subject, expired_at: new Date(this.#principal.expiresAt ?? 0).toISOString() }, 'token expired: closing with 4101');
    this.close(CloseCode.TOKEN_EXPIRED, 'token expired');
  }

  /** Anything from the peer (a message, a pong) proves it alive. */
  heard(): void {
    this.lastSeen = Date.now();
    this.lastHeard = performance.now();
  }

  /** The socket closed: timers go, nothing more is queued. */
  dispose(): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    this.#closed = true;
    this.#pending = [];
  }

  get closed(): boolean {
    return this.#closed;
  }

  get lastSequenceNumber(): number {
    return this.#seq - 1;
  }

  /** Sends a reply or notice. Queued live events go first, so the order on the wire is the order things happened. */
  send(type: string, fields: Record<string, unknown>, id?: string): void {
    if (this.#corked === 0) this.flush();
    this.#send(this.#frame(type, fields, id));
  }

  sendError(code: ErrorCode, message: string, id?: string): void {
    this.metrics.errorsSent.inc({ code });
    this.send('error', { success: false, error: { code, message } }, id);
  }

  /** Queues a live event for the next frame (see Fanout); the event object is shared by all subscribers. */
  enqueue(event: PendingEvent): void {
    if (!this.#closed) this.#pending.push(event);
  }

  /**
   * Holds live events back (while a command runs, so `command_result` precedes the
   * events it caused). Every cork must be matched by an uncork.
   */
  cork(): void {
    this.#corked++;
  }

  uncork(): void {
    if (--this.#corked === 0) this.flush();
  }

  /** Writes the queued live events: one event alone, several as one `batch_update`. */
  flush(batchTimestamp?: string): void {
    if (this.#corked > 0 || this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    const fresh: PendingEvent[] = [];
    for (const event of pending) {
      const sub = this.subscriptions.get(event.stream);
      if (!sub || event.offset <= sub.delivered) continue;
      sub.delivered = event.offset;
      fresh.push(event);
    }
    if (fresh.length === 0) return;
    const seq = this.#seq++;
    // Only the head differs between connections; the event bytes are encoded once and copied.
    this.eventsOut += fresh.length;
    this.metrics.eventsDelivered.inc(fresh.length);
    if (fresh.length === 1) {
      const event = fresh[0]!;
      event.tail ??= Buffer.from(event.json.slice(1));
      this.#sendParts(`{"sequence_number":${seq},`, event.tail);
    } else {
      this.#sendParts(`{"type":"batch_update","sequence_number":${seq},"timestamp":"${batchTimestamp ?? new Date().toISOString()}"`, batchTail(fresh));
    }
  }

  /** One text message: this connection's `head`, then a `tail` shared with other connections. */
  #sendParts(head: string, tail: Buffer): void {
    if (tail.length < SHARE_TAIL_BYTES) return this.#send(withHead(head, tail));
    if (this.#closed || this.socket.readyState !== this.socket.OPEN) return;
    // Corked, so both fragments leave in one write as a single frame would.
    const raw = (this.socket as unknown as { _socket?: Duplex })._socket;
    raw?.cork();
    this.socket.send(Buffer.from(head, 'latin1'), FIRST_FRAGMENT);
    this.socket.send(tail, LAST_FRAGMENT);
    raw?.uncork();
    this.#sent();
  }

  /** Starts the closing handshake; a peer that does not complete it within `graceMs` is cut off. */
  close(code: number, reason: string, graceMs = 2000): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    clearTimeout(this.#expiry);
    this.socket.close(code, reason);
    setTimeout(() => this.socket.terminate(), graceMs).unref();
  }

  #frame(type: string, fields: Record<string, unknown>, id?: string): string {
    const head = id === undefined ? { type } : { type, id };
    const frame = JSON.stringify({ ...head, sequence_number: this.#seq, timestamp: new Date().toISOString(), ...fields });
    // Numbered once it exists: a frame that failed to serialize takes no sequence number.
    this.#seq++;
    return frame;
  }

  #send(frame: string | Buffer): void {
    if (this.#closed || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(frame, TEXT_FRAME);
    this.#sent();
  }

  #sent(): void {
    this.framesOut++;
    this.metrics.framesOut.inc();
    if (this.socket.bufferedAmount > this.options.maxBufferedBytes) {
      // The peer reads slower than we write: stop here rather than buffer without bound.
      this.metrics.slowConsumerCloses.inc();
      this.log.warn({ buffered: this.socket.bufferedAmount }, 'slow consumer closed');
      this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: resume later');
    }
  }
}
