import { CloseCode } from '@tradesync/protocol';
import type { Logger, WebSocketConstructor, WebSocketLike } from './options.js';

export interface SocketCallbacks {
  onOpen(): void;
  onMessage(text: string): void;
  /** Called exactly once per socket, whether the peer closed it, it failed, or it went silent. */
  onClose(code: number, reason: string): void;
}

/** Ignores the late `error` that `ws` emits when a socket still connecting is closed. */
const ignore = (): void => {};

/**
 * Owns one WebSocket and its keep-alive. Browsers hide protocol pings, so the client
 * sends an application `ping` every heartbeat interval and treats two intervals
 * without any message as a dead connection.
 */
export class SocketConnection {
  readonly #socket: WebSocketLike;
  #closed = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Fires when the handshake, or later the silence, lasted too long. */
  #deadline: ReturnType<typeof setTimeout> | undefined;
  lastReceivedAt = Date.now();

  /**
   * `connectTimeoutMs` bounds the handshake: a peer that accepts TCP but never
   * answers (a stalled proxy, a frozen node) would otherwise hold the client in
   * "connecting" forever, with no close event to start the backoff.
   */
  constructor(
    readonly url: string,
    WebSocketImpl: WebSocketConstructor,
    private readonly callbacks: SocketCallbacks,
    private readonly log: Logger,
    connectTimeoutMs: number,
  ) {
    this.#deadline = setTimeout(() => {
      this.log.warn('no connected message in time: giving up on this socket', { url, connectTimeoutMs });
      // Like a silent peer: a transient close, so the client resumes.
      this.close(CloseCode.HEARTBEAT_TIMEOUT, 'connect timeout');
    }, connectTimeoutMs);
    try {
      this.#socket = new WebSocketImpl(url);
    } catch (error) {
      // An invalid URL throws synchronously; report it like any failed connection.
      clearTimeout(this.#deadline);
      throw error;
    }
    this.#socket.onopen = () => {
      this.lastReceivedAt = Date.now();
      this.callbacks.onOpen();
    };
    this.#socket.onmessage = (event) => {
      this.lastReceivedAt = Date.now();
      this.callbacks.onMessage(typeof event.data === 'string' ? event.data : String(event.data));
    };
    this.#socket.onerror = () => this.log.debug('socket error', { url });
    this.#socket.onclose = (event) => this.#finish(event.code, event.reason);
  }

  get open(): boolean {
    return !this.#closed && this.#socket.readyState === 1;
  }

  send(message: unknown): boolean {
    if (!this.open) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  /**
   * Pings every `intervalMs`; two intervals of silence end the connection. The
   * silence check is a timer aimed at `lastReceivedAt + 2 × interval` (re-aimed when
   * it fires early), so a dead peer is noticed within two intervals, not three, and
   * no timer is armed per message.
   */
  startHeartbeat(intervalMs: number): void {
    if (this.#closed) return;
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => this.send({ type: 'ping' }), intervalMs);
    const watch = () => {
      const silentFor = Date.now() - this.lastReceivedAt;
      if (silentFor >= 2 * intervalMs) {
        this.log.warn('no message for two heartbeat intervals: connection is dead', { url: this.url, silentFor });
        this.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
        return;
      }
      this.#deadline = setTimeout(watch, 2 * intervalMs - silentFor);
    };
    clearTimeout(this.#deadline);
    watch();
  }

  /**
   * Closes and reports the close at once: a dead peer may never complete the closing
   * handshake, and the client must not wait for it.
   */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    try {
      // Browsers accept only 1000 and 3000–4999 from a client.
      this.#socket.close(code >= 4000 || code === CloseCode.NORMAL ? code : CloseCode.NORMAL, reason);
    } catch {
      // Already closing or never opened: nothing to do.
    }
    this.#finish(code, reason);
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#deadline);
    this.#socket.onopen = this.#socket.onmessage = this.#socket.onclose = null;
    // Not null: `ws` emits `error` after closing a socket that was still connecting,
    // and an EventEmitter `error` without a listener would crash the process.
    this.#socket.onerror = ignore;
    this.callbacks.onClose(code, reason);
  }
}
