import { CloseCode } from '@tradesync/protocol';
import type { Logger, WebSocketConstructor, WebSocketLike } from './options.js';

export interface SocketCallbacks {
  onMessage(text: string): void;
  /** Called exactly once per socket, whether the peer closed it, it failed, or we closed it. */
  onClose(code: number, reason: string): void;
}

/** Ignores the late `error` that `ws` emits when a socket still connecting is closed. */
const ignore = (): void => {};

/**
 * Owns one WebSocket: sends JSON, reports text frames, and reports the close exactly
 * once. Timing (handshake deadline, heartbeats, backoff) belongs to the connection's
 * state machine, not here.
 */
export class SocketConnection {
  readonly #socket: WebSocketLike;
  #closed = false;

  /** Throws when the WebSocket constructor does (e.g. an invalid URL). */
  constructor(
    readonly url: string,
    WebSocketImpl: WebSocketConstructor,
    private readonly callbacks: SocketCallbacks,
    log: Logger,
  ) {
    this.#socket = new WebSocketImpl(url);
    this.#socket.onmessage = (event) => this.callbacks.onMessage(typeof event.data === 'string' ? event.data : String(event.data));
    this.#socket.onerror = () => log.debug('socket error', { url });
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
    this.#socket.onopen = this.#socket.onmessage = this.#socket.onclose = null;
    // Not null: `ws` emits `error` after closing a socket that was still connecting,
    // and an EventEmitter `error` without a listener would crash the process.
    this.#socket.onerror = ignore;
    this.callbacks.onClose(code, reason);
  }
}
