import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { systemTimers, type Timers } from './timers.js';

/** The parts of the WebSocket API the client uses (the browser's, or `ws` in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface Logger {
  debug(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
  error(message: string, context?: Record<string, unknown>): void;
}

export interface ClientOptions {
  /** One or more gateway URLs (`ws://host:port/ws`); on failure the client moves to the next. */
  readonly url: string | readonly string[];
  /** A JWT sent in an `auth` message after `connected`, or a function that returns a fresh one. */
  readonly token?: string | (() => string | Promise<string>);
  /** The WebSocket implementation. @default globalThis.WebSocket (pass `ws`'s in Node 20) */
  readonly WebSocket?: WebSocketConstructor;
  /** `fetch` for degraded mode; `null` turns degraded mode off. @default globalThis.fetch */
  readonly fetch?: typeof fetch | null;
  /** @default DEFAULT_BACKOFF (1, 2, 4, 8, 16, then 30 s, ±20%) */
  readonly backoff?: BackoffOptions;
  /** Reconnect attempts before giving up ("failed"). @default 10 */
  readonly maxAttempts?: number;
  /** Longest wait for a new socket to open and say `connected`; then it counts as a failed attempt. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Per-request timeout. @default 10000 */
  readonly requestTimeoutMs?: number;
  /** Retries of an idempotent request after a timeout or a lost connection. @default 2 */
  readonly requestRetries?: number;
  /** Resync attempts of a stream before `sync_failed`. @default 3 */
  readonly syncRetries?: number;
  /** Optimistic patches not confirmed by then are rolled back. @default 10000 */
  readonly optimisticTimeoutMs?: number;
  /** How often degraded mode refreshes over HTTP. @default 5000 */
  readonly degradedPollMs?: number;
  /** Most live events buffered for one stream while it syncs; beyond, it resyncs. @default 10000 */
  readonly maxBufferedEvents?: number;
  /**
   * Applying one live event and running its listeners for longer than this logs a
   * warning (seed 002: "log a warning if processing time >100 ms for a single event"),
   * at most one every 10 s with the count of slow events meanwhile. 0 turns it off. @default 100
   */
  readonly slowEventMs?: number;
  /** Connect on creation. @default true */
  readonly autoConnect?: boolean;
  readonly logger?: Logger;
  /** Randomness for jitter (tests pin it). @default Math.random */
  readonly random?: () => number;
  /** Timers and clock (tests control time). @default the global timers and `Date.now` */
  readonly timers?: Timers;
}

export type ResolvedOptions = Required<Omit<ClientOptions, 'token' | 'url' | 'WebSocket' | 'fetch'>> & {
  readonly urls: readonly string[];
  readonly token: ClientOptions['token'];
  readonly WebSocket: WebSocketConstructor;
  readonly fetch: typeof fetch | undefined;
};

const consoleLogger: Logger = {
  debug: () => {},
  warn: (message, context) => console.warn(`[tradesync] ${message}`, context ?? ''),
  error: (message, context) => console.error(`[tradesync] ${message}`, context ?? ''),
};

export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const urls = typeof options.url === 'string' ? [options.url] : [...options.url];
  if (urls.length === 0) throw new TypeError('at least one gateway URL is required');
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WebSocketImpl) throw new TypeError('no WebSocket implementation: pass options.WebSocket (e.g. the "ws" package in Node)');
  return {
    urls,
    token: options.token,
    WebSocket: WebSocketImpl,
    fetch: options.fetch === null ? undefined : (options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined)),
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    maxAttempts: options.maxAttempts ?? 10,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    requestRetries: options.requestRetries ?? 2,
    syncRetries: options.syncRetries ?? 3,
    optimisticTimeoutMs: options.optimisticTimeoutMs ?? 10_000,
    degradedPollMs: options.degradedPollMs ?? 5000,
    maxBufferedEvents: options.maxBufferedEvents ?? 10_000,
    slowEventMs: options.slowEventMs ?? 100,
    autoConnect: options.autoConnect ?? true,
    logger: options.logger ?? consoleLogger,
    random: options.random ?? Math.random,
    timers: options.timers ?? systemTimers,
  };
}
