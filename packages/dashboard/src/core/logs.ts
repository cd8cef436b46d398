import type { Logger } from '@tradesync/client';

/**
 * The dashboard's logger. Debug lines stay in the browser console; WARN and ERROR
 * also go to the gateway (`POST /api/logs`), batched: at most one request per
 * `intervalMs`, sooner when `maxBatch` entries wait, and with `keepalive` when the
 * page is hidden so the last lines are not lost with it.
 */
interface LogEntry {
  readonly level: 'warn' | 'error';
  readonly message: string;
  readonly time: string;
  readonly [key: string]: unknown;
}

export interface LogShipperOptions {
  readonly endpoint: string;
  readonly fetch?: typeof fetch;
  readonly intervalMs?: number;
  readonly maxBatch?: number;
  /** Entries kept while the gateway cannot be reached; the oldest go first. */
  readonly maxQueued?: number;
  readonly debugToConsole?: boolean;
  /** Sent as a bearer token: a gateway with auth on wants one on `POST /api/logs`. */
  readonly token?: string;
}

export interface LogShipper extends Logger {
  flush(options?: { keepalive?: boolean }): Promise<void>;
  readonly queued: number;
}

export function createLogShipper(options: LogShipperOptions): LogShipper {
  const send = options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
  const intervalMs = options.intervalMs ?? 2000;
  const maxBatch = options.maxBatch ?? 50;
  const maxQueued = options.maxQueued ?? 500;
  let queue: LogEntry[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight = false;

  const flush = async ({ keepalive = false } = {}) => {
    clearTimeout(timer);
    timer = undefined;
    if (queue.length === 0 || inFlight || !send) return;
    const batch = queue.slice(0, maxBatch);
    inFlight = true;
    try {
      const res = await send(options.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
        body: JSON.stringify({ logs: batch }),
        keepalive,
      });
      // A 4xx will not get better by resending: drop the batch. A 5xx keeps it.
      if (res.ok || (res.status >= 400 && res.status < 500)) queue = queue.slice(batch.length);
    } catch {
      // Offline: keep the entries for the next try.
    } finally {
      inFlight = false;
    }
    if (queue.length > 0) arm();
  };

  const arm = () => {
    if (timer === undefined) timer = setTimeout(() => void flush(), intervalMs);
  };

  const push = (level: LogEntry['level'], message: string, context?: Record<string, unknown>) => {
    queue.push({ ...context, level, message, time: new Date().toISOString() });
    if (queue.length > maxQueued) queue = queue.slice(-maxQueued);
    if (queue.length >= maxBatch) void flush();
    else arm();
  };

  return {
    debug(message, context) {
      // eslint-disable-next-line no-console -- debug belongs in the console, never on the server
      if (options.debugToConsole) console.debug(`[tradesync] ${message}`, context ?? '');
    },
    warn(message, context) {
      console.warn(`[tradesync] ${message}`, context ?? '');
      push('warn', message, context);
    },
    error(message, context) {
      console.error(`[tradesync] ${message}`, context ?? '');
      push('error', message, context);
    },
    flush,
    get queued() {
      return queue.length;
    },
  };
}
