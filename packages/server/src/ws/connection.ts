import { randomUUID } from 'node:crypto';
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

interface PendingEvent {
  readonly stream: string;
  readonly offset: number;
  /** The event serialized once for every connection: `{"type":…,"stream":…,…}`. */
  readonly json: string;
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
  principal: Principal;
  authenticated: boolean;
  lastSeen = Date.now();
  /** Heartbeat pings sent since the peer was last heard from. */
  unansweredPings = 0;
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

  constructor(
    readonly socket: WebSocket,
    principal: Principal,
    authenticated: boolean,
    private readonly options: ConnectionOptions,
    private readonly metrics: Metrics,
    log: Logger,
  ) {
    this.principal = principal;
    this.authenticated = authenticated;
    this.limiter = new TokenBucket(options.messagesPerSecond, options.messageBurst);
    this.log = log.child({ connection_id: this.id });
  }

  /** Anything from the peer (a message, a pong) proves it alive. */
  heard(): void {
    this.lastSeen = Date.now();
    this.unansweredPings = 0;
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

  /** Queues a live event for the next frame (see Fanout). */
  enqueue(stream: string, offset: number, json: string): void {
    if (!this.#closed) this.#pending.push({ stream, offset, json });
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
    const fresh: string[] = [];
    for (const event of pending) {
      const sub = this.subscriptions.get(event.stream);
      if (!sub || event.offset <= sub.delivered) continue;
      sub.delivered = event.offset;
      fresh.push(event.json);
    }
    if (fresh.length === 0) return;
    const seq = this.#seq++;
    const frame =
      fresh.length === 1
        ? `{"sequence_number":${seq},${fresh[0]!.slice(1)}`
        : `{"type":"batch_update","sequence_number":${seq},"timestamp":"${batchTimestamp ?? new Date().toISOString()}","events":[${fresh.join(',')}]}`;
    this.eventsOut += fresh.length;
    this.metrics.eventsDelivered.inc(fresh.length);
    this.#send(frame);
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.socket.close(code, reason);
    // A peer that does not complete the closing handshake is cut off.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  #frame(type: string, fields: Record<string, unknown>, id?: string): string {
    const seq = this.#seq++;
    const head = id === undefined ? { type } : { type, id };
    return JSON.stringify({ ...head, sequence_number: seq, timestamp: new Date().toISOString(), ...fields });
  }

  #send(frame: string): void {
    if (this.#closed || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(frame);
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
