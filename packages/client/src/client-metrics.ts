/**
 * What only a client can count (seed 002's reconnect rate, resync buffer size, toast
 * rate), posted to the gateway's `POST /api/client-metrics`: counters as deltas since
 * the previous post, the buffer as the largest since then. Built over the client's
 * public events only. See docs/CLIENT.md, "Reporting what the client sees".
 */
import type { TradeSyncClient } from './client.js';

export interface ClientMetricsOptions {
  /** How often counts are posted. @default 15000 (four posts a minute, well under the per-address limit) */
  readonly everyMs?: number;
  /** Sent as a bearer token (a gateway with auth on wants one). */
  readonly token?: string;
  readonly fetch?: typeof fetch;
}

export interface ClientMetricsReporter {
  /** Call wherever a toast is actually shown. */
  toastShown(): void;
  /** Posts what was counted since the last post (nothing when nothing was). */
  flush(): Promise<void>;
  stop(): void;
}

export function reportClientMetrics(client: Pick<TradeSyncClient, 'on' | 'streams'>, endpoint: string, options: ClientMetricsOptions = {}): ClientMetricsReporter {
  // Bound: a browser's fetch called on another `this` throws "Illegal invocation".
  const send = options.fetch ?? fetch.bind(globalThis);
  let attempts = 0;
  let successes = 0;
  let toasts = 0;
  let buffer = 0;
  /** Where each lossless stream stood when the socket was lost: a resume replays from there. */
  const before = new Map<string, number>();
  const offStatus = client.on('status', (status, previous) => {
    // A new attempt number while reconnecting: one more try after a lost connection.
    if (status.state === 'reconnecting' && status.attempt !== previous.attempt) attempts++;
    // Live again after trying (a first connect is not a reconnect).
    if (status.state === 'connected' && previous.state === 'reconnecting') successes++;
    if (previous.state === 'connected' && status.state !== 'connected') {
      // Conflated streams replay only the newest event per key: the count below would not hold.
      for (const s of client.streams()) if (s.position && s.maxRate === undefined) before.set(s.stream, s.position.offset);
    }
  });
  const offSynced = client.on('synced', (info) => {
    const from = before.get(info.stream);
    before.delete(info.stream);
    // Live events held during the sync are applied after its snapshot or its replayed events.
    const held = info.snapshotOffset !== undefined ? info.offset - info.snapshotOffset : from !== undefined ? info.offset - from - info.replayed : 0;
    buffer = Math.max(buffer, held);
  });

  const flush = async (): Promise<void> => {
    const body = {
      ...(attempts ? { reconnect_attempts: attempts } : {}),
      ...(successes ? { reconnect_successes: successes } : {}),
      ...(toasts ? { toasts_shown: toasts } : {}),
      ...(buffer ? { resync_buffer_size: buffer } : {}),
    };
    if (Object.keys(body).length === 0) return;
    attempts = successes = toasts = buffer = 0;
    try {
      const res = await send(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
        body: JSON.stringify(body),
        // Still sent when the page is being closed.
        keepalive: true,
      });
      // A 4xx will not get better by resending; a 5xx keeps the counts for the next post.
      if (res.status >= 500) restore(body);
    } catch {
      // Offline (the reason we count reconnects): keep the counts for the next post.
      restore(body);
    }
  };
  const restore = (body: { reconnect_attempts?: number; reconnect_successes?: number; toasts_shown?: number; resync_buffer_size?: number }) => {
    attempts += body.reconnect_attempts ?? 0;
    successes += body.reconnect_successes ?? 0;
    toasts += body.toasts_shown ?? 0;
    buffer = Math.max(buffer, body.resync_buffer_size ?? 0);
  };
  // Every 15 s: four posts a minute per page, well under the per-address limit.
  const timer = setInterval(() => void flush(), options.everyMs ?? 15_000);
  return {
    toastShown: () => void toasts++,
    flush,
    stop: () => {
      clearInterval(timer);
      offStatus();
      offSynced();
    },
  };
}
