import type { Logger, WebSocketConstructor, WebSocketLike } from './options.js';

export interface SocketCallbacks {
  onOpen(): void;
  onMessage(text: string): void;
  /** Called exactly once per socket, whether the peer closed it, it failed, or it went silent. */
  onClose(code: number, reason: string): void;
}

/** Close code the client uses when the server went silent for two heartbeat intervals. */
export const HEARTBEAT_TIMEOUT_CODE = 4000;

/**
 * Owns one WebSocket and its keep-alive. Browsers hide protocol pings, so the client
 * sends an application `ping` every heartbeat interval and treats two intervals
 * without any message as a dead connection.
 */
export class SocketConnection {
  readonly #socket: WebSocketLike;
  #closed = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  lastReceivedAt = Date.now();

  constructor(
    readonly url: string,
    WebSocketImpl: WebSocketConstructor,
    private readonly callbacks: SocketCallbacks,
    private readonly log: Logger,
  ) {
    this.#socket = new WebSocketImpl(url);
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

  /** Pings every `intervalMs`; two intervals of silence end the connection. */
  startHeartbeat(intervalMs: number): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.lastReceivedAt > 2 * intervalMs) {
        this.log.warn('no message for two heartbeat intervals: connection is dead', { url: this.url });
        this.close(HEARTBEAT_TIMEOUT_CODE, 'heartbeat timeout');
        return;
      }
      this.send({ type: 'ping' });
    }, intervalMs);
  }

  /**
   * Closes and reports the close at once: a dead peer may never complete the closing
   * handshake, and the client must not wait for it.
   */
  close(code = 1000, reason = ''): void {
    try {
      this.#socket.close(code >= 4000 || code === 1000 ? code : 1000, reason);
    } catch {
      // Already closing or never opened: nothing to do.
    }
    this.#finish(code, reason);
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#socket.onopen = this.#socket.onmessage = this.#socket.onerror = this.#socket.onclose = null;
    this.callbacks.onClose(code, reason);
  }
}
