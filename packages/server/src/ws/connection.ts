/**
 * One client socket and everything it owns. Over ~300 lines on purpose: its state
 * (numbering, subscriptions, queued events, rate, heartbeat times, token expiry) is
 * private and changes only through the methods here, so the other files cannot move
 * it behind its back; the frames it shares with other connections live in frames.ts,
 * the rate limit in ratelimit.ts. About a third of the file is comments.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CloseCode, hasSessions, parseStream, type ErrorCode, type ServerMessageFields, type ServerMessageType, type StreamKind, type StreamPosition } from '@tradesync/protocol';
import type { Principal } from '../auth.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { StoredEvent } from '../engines/engine.js';
import type { ConflationGroup } from './conflation.js';
import { BatchFrames, pendingForSession, serializeEvent, textFrame, withHead, type PendingEvent, type SharedMessage } from './frames.js';
import { MessageRate, type RateVerdict } from './ratelimit.js';

/** What a connection remembers of one subscription. */
interface Subscription {
  readonly stream: string;
  readonly sessionId: string | undefined;
  /** The session this subscription is scoped to: its `session_id` on a stream of a kind with sessions (see the protocol's sessions.ts). */
  readonly scope: string | undefined;
  /**
   * The highest offset this connection has been given for the stream (in the
   * `subscribed` reply or a live event). Live events at or below it are dropped, so
   * a subscriber never sees a duplicate however publishes and replies interleave.
   */
  delivered: number;
  epoch: string;
  /** For a conflated subscription (`max_rate`): the group that conflates its events, with the stream's other subscribers at that rate. */
  readonly conflation: ConflationGroup | undefined;
  /**
   * A `stream_position` came due while events of the stream were still held (corked,
   * or waiting in the conflation): it goes after them, as soon as they are written.
   */
  owesPosition: boolean;
}

/** A stream's position at its head now, with its message serialized once for every subscriber (see Positions). */
export interface PositionNow {
  readonly epoch: string;
  readonly offset: number;
  readonly message: SharedMessage<'stream_position'>;
}

/** A subscription as others see it: where the connection stands on the stream. */
export interface SubscriptionPosition {
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
  /** The conflation rate of a conflated subscription. */
  readonly max_rate?: number;
}

/**
 * The messages a handler sends with `send`: every server message the protocol
 * declares, except `batch_update`, which only `flush` builds (it must pass the
 * duplicate filter and share its body between connections).
 */
export type ReplyType = Exclude<ServerMessageType, 'batch_update'>;

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

export interface ConnectionOptions {
  readonly maxBufferedBytes: number;
  readonly messagesPerSecond: number;
  readonly messageBurst: number;
  readonly remoteAddress: string | undefined;
  /** The position of a stream at its head now (as a session sees it): what an owed `stream_position` says once it can be sent. */
  readonly positionOf?: (stream: string, session: string | undefined) => PositionNow | undefined;
}

/**
 * One client socket: numbering of everything sent (`connected` is 0, then +1 per
 * message), its subscriptions, the live events queued for its next frame, its rate
 * limit, its heartbeat times and the slow-consumer guard. Its state changes only
 * through its methods.
 */
export class Connection {
  readonly id = randomUUID();
  readonly connectedAt = new Date();
  readonly log: Logger;
  readonly #socket: WebSocket;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #rate: MessageRate;
  #principal: Principal;
  #authenticated: boolean;
  /** Wall-clock time the peer was last heard from (for the admin list). */
  #lastSeen = Date.now();
  /** Monotonic time (performance.now) the peer was last heard from: any frame or pong. */
  #lastHeard = performance.now();
  /** Monotonic time of the last heartbeat ping (the connection's start counts as one). */
  #lastPing = performance.now();
  #messagesIn = 0;
  #framesOut = 0;
  #eventsOut = 0;
  /** Live events delivered per stream kind (seed 004's `portfolio_updates_received`, …). */
  readonly #eventsByKind: Record<StreamKind, number> = { portfolio: 0, orders: 0, signals: 0, state_machines: 0, indicators: 0, alerts: 0, market: 0 };
  /** The processing of the latest admitted frame: the next one starts after it (see `inOrder`). */
  #inbox: Promise<void> = Promise.resolve();
  #seq = 0;
  #pending: PendingEvent[] = [];
  #corked = 0;
  /** Subscriptions owed a position: flush looks at them only when there are some. */
  #owed = 0;
  #closed = false;
  #expiry: NodeJS.Timeout | undefined;

  constructor(
    socket: WebSocket,
    principal: Principal,
    authenticated: boolean,
    private readonly options: ConnectionOptions,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.#socket = socket;
    this.#principal = principal;
    this.#authenticated = authenticated;
    this.#rate = new MessageRate(options.messagesPerSecond, options.messageBurst);
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

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether frames can still be written: not closing, and the socket open. */
  get writable(): boolean {
    return !this.#closed && this.#socket.readyState === this.#socket.OPEN;
  }

  /** Whether the socket is gone for good (its 'close' handler has run or is about to). */
  get hungUp(): boolean {
    return this.#socket.readyState === this.#socket.CLOSED;
  }

  get lastSequenceNumber(): number {
    return this.#seq - 1;
  }

  /** Counters for the admin list and `get_initial_state`. */
  get stats(): { readonly messagesIn: number; readonly framesOut: number; readonly eventsOut: number; readonly lastSeen: number; readonly bufferedBytes: number } {
    return { messagesIn: this.#messagesIn, framesOut: this.#framesOut, eventsOut: this.#eventsOut, lastSeen: this.#lastSeen, bufferedBytes: this.#socket.bufferedAmount };
  }

  /** Live events delivered on this connection from streams of `kind`. */
  eventsReceived(kind: StreamKind): number {
    return this.#eventsByKind[kind];
  }

  /* ------------------------------------------------------------ inbound */

  /** Counts a frame from the peer (which proves it alive) and judges it against the rate limit. */
  receive(): RateVerdict {
    this.#messagesIn++;
    this.heard();
    return this.#rate.take();
  }

  /** Anything from the peer (a message, a pong) proves it alive. */
  heard(): void {
    this.#lastSeen = Date.now();
    this.#lastHeard = performance.now();
  }

  /**
   * Runs `step` once the previously queued step is done, so frames are processed in
   * the order they came (see MessageHandlers.handle). A failing step is logged and
   * does not stop the ones after it.
   */
  inOrder(step: () => Promise<void> | void): Promise<void> {
    const done = this.#inbox.then(step).catch((err: unknown) => this.log.error({ err }, 'message processing failed'));
    this.#inbox = done;
    return done;
  }

  /* ------------------------------------------------------------ heartbeat */

  /** Milliseconds since the peer was last heard from, at monotonic time `now`. */
  silentFor(now: number): number {
    return now - this.#lastHeard;
  }

  /** Sends a heartbeat ping when the last one is at least `everyMs` old and the socket is open. */
  pingIfDue(now: number, everyMs: number): void {
    if (now - this.#lastPing < everyMs || this.#socket.readyState !== this.#socket.OPEN) return;
    this.#lastPing = now;
    this.#socket.ping();
  }

  /* ------------------------------------------------------------ auth */

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

  /* ------------------------------------------------------------ subscriptions (registered through Fanout) */

  isSubscribed(stream: string): boolean {
    return this.#subscriptions.has(stream);
  }

  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  subscribedStreams(): string[] {
    return [...this.#subscriptions.keys()];
  }

  /** Where the connection stands on each stream: the epoch and the last offset it was given. */
  positions(): SubscriptionPosition[] {
    return [...this.#subscriptions.values()].map((s) => ({ stream: s.stream, epoch: s.epoch, offset: s.delivered, ...(s.conflation ? { max_rate: s.conflation.maxRate } : {}) }));
  }

  /**
   * Records a subscription whose reply gives the stream up to `position` (call
   * Fanout.subscribe, which also routes events here); replaces an earlier one.
   */
  track(stream: string, sessionId: string | undefined, position: StreamPosition, conflation?: ConflationGroup): void {
    this.untrack(stream);
    const kind = parseStream(stream)?.kind;
    const scope = sessionId !== undefined && kind !== undefined && hasSessions(kind) ? sessionId : undefined;
    this.#subscriptions.set(stream, { stream, sessionId, scope, epoch: position.epoch, delivered: position.offset, conflation, owesPosition: false });
  }

  /** The session a subscription is scoped to (what it sees of the stream); undefined for the whole stream. */
  scopeOf(stream: string): string | undefined {
    return this.#subscriptions.get(stream)?.scope;
  }

  /** Forgets a subscription (through Fanout.unsubscribe); false when there was none. */
  untrack(stream: string): boolean {
    const sub = this.#subscriptions.get(stream);
    if (!sub) return false;
    if (sub.owesPosition) this.#owed--;
    return this.#subscriptions.delete(stream);
  }

  /** The conflation rate of a subscription; undefined when it is not conflated (or not subscribed). */
  maxRateOf(stream: string): number | undefined {
    return this.#subscriptions.get(stream)?.conflation?.maxRate;
  }

  /** The stream restarts at `position` (a new epoch): queued events at or below it are not sent. False when not subscribed. */
  restart(stream: string, position: StreamPosition): boolean {
    const sub = this.#subscriptions.get(stream);
    if (!sub) return false;
    sub.epoch = position.epoch;
    sub.delivered = position.offset;
    return true;
  }

  /**
   * Sends a stream's position once every event up to it has been written: at once when
   * nothing of the stream is held back, else after the held events go (see PositionNow).
   * Nothing is sent when this connection is not at that position (it was given a newer
   * reply meanwhile, or another epoch); the next position covers it.
   */
  sendPosition(stream: string, position: PositionNow, frames?: BatchFrames): void {
    const sub = this.#subscriptions.get(stream);
    if (!sub || !this.writable) return;
    if (this.#corked === 0) this.flush(frames);
    if (this.#corked > 0 || (sub.conflation && sub.conflation.size > 0)) {
      if (!sub.owesPosition) this.#owed++;
      sub.owesPosition = true;
      return;
    }
    this.#positionIfAt(sub, position);
  }

  #positionIfAt(sub: Subscription, position: PositionNow): void {
    if (sub.epoch !== position.epoch || sub.delivered !== position.offset) return;
    // Over the send limit a position is not worth pushing: the slow-consumer guard decides.
    if (this.sendShared(position.message)) this.metrics.positionsSent.inc();
  }

  /** Owed positions of streams whose held events have now been written. */
  #payPositions(): void {
    for (const sub of this.#subscriptions.values()) {
      if (!sub.owesPosition || (sub.conflation && sub.conflation.size > 0)) continue;
      sub.owesPosition = false;
      this.#owed--;
      const position = this.options.positionOf?.(sub.stream, sub.scope);
      if (position) this.#positionIfAt(sub, position);
    }
  }

  /* ------------------------------------------------------------ outbound */

  /**
   * Sends a reply or notice, typed by the protocol's schema of `type`. Queued live
   * events go first, so the order on the wire is the order things happened.
   */
  send<T extends ReplyType>(type: T, fields: ServerMessageFields<T>, id?: string): void {
    if (this.#corked === 0) this.flush();
    this.#send(this.#frame(type, fields, id));
  }

  sendError(code: ErrorCode, message: string, id?: string): void {
    this.metrics.errorsSent.inc({ code });
    this.send('error', { success: false, error: { code, message } }, id);
  }

  /**
   * Sends a message serialized once for many connections (see SharedMessage), after the
   * queued live events, unless it would take the send buffer past
   * `limits.max_buffered_bytes`: then nothing is sent, and the caller decides.
   */
  sendShared(message: SharedMessage): boolean {
    if (this.#corked === 0) this.flush();
    if (!this.writable) return true;
    const head = `{"type":"${message.type}","sequence_number":${this.#seq},"timestamp":"${new Date().toISOString()}"`;
    if (this.#socket.bufferedAmount + head.length + message.tail.length > this.options.maxBufferedBytes) return false;
    this.#seq++;
    this.#sendParts(head, message.tail);
    return true;
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

  /**
   * Writes the queued live events: one event alone, several as one `batch_update`.
   * `frames` is the fan-out flush this write belongs to (its batch bodies are shared
   * with the other connections of that flush); a write of its own gets its own.
   */
  flush(frames?: BatchFrames): void {
    if (this.#corked > 0) return;
    if (this.#pending.length > 0) this.#write(frames);
    if (this.#owed > 0) this.#payPositions();
  }

  #write(frames: BatchFrames | undefined): void {
    const pending = this.#pending;
    this.#pending = [];
    const fresh: PendingEvent[] = [];
    for (const queued of pending) {
      const sub = this.#subscriptions.get(queued.stream);
      // An event of an epoch the stream has left (queued before a reset) is not sent.
      if (!sub || queued.offset <= sub.delivered || queued.event.epoch !== sub.epoch) continue;
      const event = sub.scope === undefined ? queued : pendingForSession(queued, sub.scope);
      if (!event) {
        // Another session's entity: not for this subscription, which has seen past it all the same.
        sub.delivered = queued.offset;
        continue;
      }
      sub.delivered = event.offset;
      this.#eventsByKind[event.kind]++;
      fresh.push(event);
    }
    if (fresh.length === 0) return;
    const seq = this.#seq++;
    // Only the head differs between connections; the event bytes are encoded once and copied.
    this.#eventsOut += fresh.length;
    this.metrics.eventsDelivered.inc(fresh.length);
    if (fresh.length === 1) {
      const event = fresh[0]!;
      event.tail ??= Buffer.from(event.json.slice(1));
      this.#sendParts(`{"sequence_number":${seq},`, event.tail);
    } else {
      const batch = frames ?? new BatchFrames();
      this.#sendParts(`{"type":"batch_update","sequence_number":${seq},"timestamp":"${batch.timestamp}"`, batch.tail(fresh));
    }
  }

  /** One text message: this connection's `head`, then a `tail` shared with other connections. */
  #sendParts(head: string, tail: Buffer): void {
    if (!this.writable) return;
    // `_socket`: the TCP socket ws writes to, which it does not expose publicly.
    const raw = (this.#socket as WebSocket & { readonly _socket?: Duplex })._socket;
    if (tail.length < SHARE_TAIL_BYTES) {
      if (!raw) return this.#send(withHead(head, tail));
      // The whole frame, built here, straight to the TCP socket: one buffer and one write
      // instead of ws's header and payload as two (measured, fan-out 100 events/s × 1,000
      // clients: 7.4–7.9 → 7.0 µs of server CPU per message). Safe because this gateway's
      // ws never holds a message back: no permessage-deflate (its only queue) and every
      // fragmented message is sent whole in one synchronous call (below), so nothing of
      // ws's can be half-written when this frame goes.
      raw.write(textFrame(head, tail));
      this.#sent();
      return;
    }
    // Corked, so both fragments leave in one write as a single frame would.
    raw?.cork();
    this.#socket.send(Buffer.from(head, 'latin1'), FIRST_FRAGMENT);
    this.#socket.send(tail, LAST_FRAGMENT);
    raw?.uncork();
    this.#sent();
  }

  /* ------------------------------------------------------------ closing */

  /** Starts the closing handshake; a peer that does not complete it within `graceMs` is cut off. */
  close(code: number, reason: string, graceMs = 2000): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    clearTimeout(this.#expiry);
    this.#socket.close(code, reason);
    setTimeout(() => this.#socket.terminate(), graceMs).unref();
  }

  /** The socket closed: timers go, nothing more is queued. */
  dispose(): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    this.#closed = true;
    this.#pending = [];
  }

  #frame(type: ReplyType, fields: object, id?: string): string {
    const head = id === undefined ? { type } : { type, id };
    const frame = replayedEvents(fields)
      ? withEvents({ ...head, sequence_number: this.#seq, timestamp: new Date().toISOString(), ...fields, events: undefined }, fields.events)
      : JSON.stringify({ ...head, sequence_number: this.#seq, timestamp: new Date().toISOString(), ...fields });
    // Numbered once it exists: a frame that failed to serialize takes no sequence number.
    this.#seq++;
    return frame;
  }

  #send(frame: string | Buffer): void {
    if (!this.writable) return;
    this.#socket.send(frame, TEXT_FRAME);
    this.#sent();
  }

  #sent(): void {
    this.#framesOut++;
    this.metrics.framesOut.inc();
    if (this.#socket.bufferedAmount > this.options.maxBufferedBytes) {
      // The peer reads slower than we write: stop here rather than buffer without bound.
      this.metrics.slowConsumerCloses.inc();
      this.log.warn({ buffered: this.#socket.bufferedAmount }, 'slow consumer closed');
      this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: resume later');
    }
  }
}

/** A reply that replays events (a recovered `subscribed`): their JSON is reused, not made again per connection. */
function replayedEvents(fields: object): fields is { events: readonly StoredEvent[] } {
  return Array.isArray((fields as { events?: unknown }).events);
}

/** `message` as JSON with `"events":[…]` last, spliced from each event's cached JSON (see serializeEvent). */
function withEvents(message: object, events: readonly StoredEvent[]): string {
  const rest = JSON.stringify(message);
  let out = `${rest.slice(0, -1)}${rest.length > 2 ? ',' : ''}"events":[`;
  for (let i = 0; i < events.length; i++) out += (i > 0 ? ',' : '') + serializeEvent(events[i]!);
  return `${out}]}`;
}
