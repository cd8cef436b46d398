import { isReplyTo, type ClientMessageData, type ClientMessageType, type ReplyMessage, type ReplyTo } from '@tradesync/protocol';
import { ClientClosedError, ConnectionLostError, RequestTimeoutError, ServerError, type TradeSyncError } from './errors.js';
import type { TimerHandle, Timers } from './timers.js';

/** What requests need from the connection. */
export interface RequestTransport {
  /** Open for requests (authenticated). `auth` itself is sent before that. */
  isOpen(): boolean;
  /** Writes one frame on the current socket; false when there is none. */
  write(message: { readonly id: string; readonly type: ClientMessageType; readonly data: Record<string, unknown> }): boolean;
}

interface Pending {
  readonly type: ClientMessageType;
  /** Resolves the request when `reply` is of the type it expects; false otherwise. */
  readonly accept: (reply: ReplyMessage) => boolean;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
}

/**
 * Requests in flight, matched to their replies by `id`, each with its own timeout
 * (tRPC's `requestManager`). A request made while the connection is down waits for it
 * (within its timeout); requests and replies are typed by the protocol's
 * `CLIENT_MESSAGES` and `REPLY_OF`.
 */
export class Requests {
  readonly #pending = new Map<string, Pending>();
  /** Callbacks waiting for the connection to open (requests sent while offline). */
  #whenOpen: Array<() => void> = [];
  #next = 0;

  constructor(
    private readonly prefix: string,
    private readonly transport: RequestTransport,
    private readonly timers: Timers,
    private readonly defaults: { readonly timeoutMs: number; readonly retries: number },
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  /**
   * Sends one request once the connection is open; rejects on timeout, error reply or
   * loss. Without `data` the request carries `{}` (the server checks it like any other).
   */
  async send<T extends ClientMessageType>(type: T, data: ClientMessageData<T> | undefined, timeoutMs = this.defaults.timeoutMs): Promise<ReplyTo<T>> {
    const deadline = this.timers.now() + timeoutMs;
    if (!this.transport.isOpen() && type !== 'auth') await this.#ready(timeoutMs, type);
    const id = `${this.prefix}${++this.#next}`;
    const reply = new Promise<ReplyTo<T>>((resolve, reject) => {
      const remaining = Math.max(1, deadline - this.timers.now());
      const timer = this.timers.setTimeout(() => {
        this.#pending.delete(id);
        reject(new RequestTimeoutError(type, remaining));
      }, remaining);
      const accept = (message: ReplyMessage): boolean => {
        if (!isReplyTo(type, message)) return false;
        resolve(message);
        return true;
      };
      this.#pending.set(id, { type, accept, reject, timer });
    });
    if (!this.transport.write({ id, type, data: data ?? {} })) this.#fail(id, new ConnectionLostError(type));
    return reply;
  }

  /** A request that is safe to repeat: retried after a timeout or a lost connection. */
  async request<T extends ClientMessageType>(type: T, data: ClientMessageData<T> | undefined, retries = this.defaults.retries): Promise<ReplyTo<T>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send(type, data);
      } catch (error) {
        const retryable = error instanceof RequestTimeoutError || error instanceof ConnectionLostError;
        if (!retryable || attempt >= retries) throw error;
      }
    }
  }

  /**
   * Settles the request a reply belongs to; false when none is waiting for it (it timed
   * out, or the message answers nothing). An `error` reply rejects with `ServerError`.
   */
  settle(message: ReplyMessage): boolean {
    const id = message.id;
    if (typeof id !== 'string') return false;
    const pending = this.#pending.get(id);
    if (!pending) return false;
    if (message.type === 'error') return this.#fail(id, new ServerError(message.error.code, message.error.message, pending.type));
    this.#pending.delete(id);
    this.timers.clearTimeout(pending.timer);
    if (!pending.accept(message)) pending.reject(new ServerError('INVALID_MESSAGE', `unexpected ${message.type} reply`, pending.type));
    return true;
  }

  /** The connection opened: requests waiting for it go out. */
  opened(): void {
    for (const ready of this.#whenOpen.splice(0)) ready();
  }

  /** The socket closed under the requests in flight; those waiting for a connection keep waiting. */
  failInFlight(makeError: (type: string) => TradeSyncError = (type) => new ConnectionLostError(type)): void {
    for (const id of [...this.#pending.keys()]) this.#fail(id, makeError(this.#pending.get(id)!.type));
  }

  /** The client stopped (disconnect, or gave up): every request fails now. */
  closed(): void {
    this.failInFlight((type) => new ClientClosedError(type));
    for (const ready of this.#whenOpen.splice(0)) ready();
  }

  #fail(id: string, error: Error): boolean {
    const pending = this.#pending.get(id);
    if (!pending) return false;
    this.#pending.delete(id);
    this.timers.clearTimeout(pending.timer);
    pending.reject(error);
    return true;
  }

  /** Resolves when open; rejects when the client is closed or after `timeoutMs`. */
  #ready(timeoutMs: number, type: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.#whenOpen = this.#whenOpen.filter((f) => f !== done);
        reject(new RequestTimeoutError(type, timeoutMs));
      }, timeoutMs);
      const done = () => {
        this.timers.clearTimeout(timer);
        if (this.transport.isOpen()) resolve();
        else reject(new ClientClosedError(type));
      };
      this.#whenOpen.push(done);
    });
  }
}
