import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SignJWT } from 'jose';
import { http, metricFrom, order, publish, startGateway, TestClient, tick } from '@tradesync/testing';

/**
 * Seed 002's "metrics to track" and seed 003's state-store monitoring, read where an
 * operator reads them: GET /metrics of a real gateway.
 */

async function scrape(url: string): Promise<string> {
  const res = await http(url, '/metrics');
  expect(res.status).toBe(200);
  return res.text;
}

describe('events sent per event type', () => {
  it('counts each event once per subscribed connection, by its type, and nothing for a stream nobody watches', async () => {
    await using gw = await startGateway();
    const watchers = await Promise.all([0, 1, 2].map(() => TestClient.connect(gw.wsUrl)));
    await using market = await TestClient.connect(gw.wsUrl);
    try {
      for (const client of watchers) await client.request('subscribe', { stream: 'orders:acc' });
      await market.request('subscribe', { stream: 'market:BTC-USD' });

      // Every type starts at 0, so rate() has a series before the first event.
      const before = await scrape(gw.url);
      expect(before).toMatch(/^tradesync_events_sent_total\{type="signal:new"\} 0$/m);
      expect(metricFrom(before, 'tradesync_events_sent_total')).toBe(0);

      await publish(gw.url, [order('acc'), order('acc', { status: 'filled' }), tick('BTC-USD', '42000.5'), order('nobody')]);
      await vi.waitFor(() => {
        for (const client of watchers) expect(client.events('orders:acc')).toHaveLength(2);
        expect(market.events('market:BTC-USD')).toHaveLength(1);
      });

      const after = await scrape(gw.url);
      // Two order events × three subscribers; one tick × one; orders:nobody has no subscriber.
      expect(metricFrom(after, 'tradesync_events_sent_total', { type: 'order:updated' })).toBe(6);
      expect(metricFrom(after, 'tradesync_events_sent_total', { type: 'market:tick' })).toBe(1);
      expect(metricFrom(after, 'tradesync_events_sent_total')).toBe(7);
      // The per-connection counter agrees: every event was written to every subscriber.
      expect(metricFrom(after, 'tradesync_events_delivered_total')).toBe(7);
    } finally {
      for (const client of watchers) await client[Symbol.asyncDispose]();
    }
  });
});

describe('POST /api/client-metrics', () => {
  const report = (body: unknown, init: { token?: string; headers?: Record<string, string> } = {}) => ({ method: 'POST', body, ...init });

  it('adds reported reconnect attempts, successes and toasts to counters and sets the resync buffer gauge', async () => {
    await using gw = await startGateway();
    const first = await http(gw.url, '/api/client-metrics', report({ reconnect_attempts: 3, reconnect_successes: 1, toasts_shown: 2, resync_buffer_size: 40 }));
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ success: true });
    expect((await http(gw.url, '/api/client-metrics', report({ reconnect_attempts: 1, toasts_shown: 1, resync_buffer_size: 7 }))).status).toBe(200);

    const text = await scrape(gw.url);
    expect(metricFrom(text, 'tradesync_client_metric_reports_total')).toBe(2);
    expect(metricFrom(text, 'tradesync_client_reconnect_attempts_total')).toBe(4);
    expect(metricFrom(text, 'tradesync_client_reconnect_successes_total')).toBe(1);
    expect(metricFrom(text, 'tradesync_client_toasts_shown_total')).toBe(3);
    // A gauge: the latest report says what the buffer was, not a sum.
    expect(metricFrom(text, 'tradesync_client_resync_buffer_events')).toBe(7);
  });

  it('refuses a report it cannot trust with 400 and counts nothing of it', async () => {
    await using gw = await startGateway();
    for (const body of [{}, { reconnect_attempts: -1 }, { reconnect_attempts: 1.5 }, { toasts: 1 }, { toasts_shown: 1_000_000 }, [1, 2], '"reconnect"']) {
      const res = await http(gw.url, '/api/client-metrics', report(body));
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toMatchObject({ success: false, error: { code: 'INVALID_MESSAGE' } });
      expect(String((res.body.error as { message: string }).message)).toContain('reconnect_attempts');
    }
    const text = await scrape(gw.url);
    expect(metricFrom(text, 'tradesync_client_metric_reports_total')).toBe(0);
    expect(metricFrom(text, 'tradesync_client_toasts_shown_total')).toBe(0);
  });

  it('is guarded like /api/logs: a foreign page gets 403, and each address is rate-limited', async () => {
    await using gw = await startGateway({ limits: { logRequestsPerMinute: 3 } });
    const foreign = await http(gw.url, '/api/client-metrics', report({ toasts_shown: 5 }, { headers: { origin: 'https://evil.example' } }));
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatchObject({ error: { code: 'ORIGIN_NOT_ALLOWED' } });
    // The gateway's own page is no foreigner.
    const own = await http(gw.url, '/api/client-metrics', report({ toasts_shown: 1 }, { headers: { origin: gw.url } }));
    expect(own.status).toBe(200);

    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await http(gw.url, '/api/client-metrics', report({ toasts_shown: 1 }))).status);
    // 3 a minute, and the 403 above was refused before the limiter counted it.
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await http(gw.url, '/api/client-metrics', report({ toasts_shown: 1 }));
    expect(limited.body).toMatchObject({ success: false, error: { code: 'RATE_LIMITED' } });
    expect(metricFrom(await scrape(gw.url), 'tradesync_client_toasts_shown_total')).toBe(3);
  });

  it('needs a token when auth is on', async () => {
    const secret = 'client-metrics-secret-'.padEnd(32, 'x');
    await using gw = await startGateway({ auth: { enabled: true, secret } });
    expect((await http(gw.url, '/api/client-metrics', report({ toasts_shown: 1 }))).status).toBe(401);
    const token = await new SignJWT({ accounts: ['demo'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    expect((await http(gw.url, '/api/client-metrics', report({ toasts_shown: 1 }, { token }))).status).toBe(200);
  });
});

describe('state store metrics', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('counts compaction passes, snapshots written and events trimmed, and times each stream rebuilt at start-up', async () => {
    // No timer-driven pass during the test: only the one asked for below.
    const history = { maxEvents: 4, snapshotEvery: 5, compactIntervalMs: 3_600_000 };
    const first = await startGateway({ history }, { keepData: true });
    dirs.push(first.dataDir);
    const fresh = await scrape(first.url);
    expect(metricFrom(fresh, 'tradesync_compactions_total')).toBe(0);
    expect(metricFrom(fresh, 'tradesync_snapshots_written_total')).toBe(0);
    // An empty data dir has nothing to rebuild.
    expect(metricFrom(fresh, 'tradesync_state_rebuild_seconds_count')).toBe(0);

    await publish(first.url, [...Array.from({ length: 10 }, () => order('acc1')), ...Array.from({ length: 10 }, (_, i) => tick('ETH-USD', `${2000 + i}.5`))]);
    await first.gateway.compact();
    const compacted = await scrape(first.url);
    expect(metricFrom(compacted, 'tradesync_compactions_total')).toBe(1);
    // Each stream: 10 events ≥ snapshot_every → one snapshot; 10 − max_events 4 = 6 trimmed.
    expect(metricFrom(compacted, 'tradesync_snapshots_written_total')).toBe(2);
    expect(metricFrom(compacted, 'tradesync_events_trimmed_total')).toBe(12);
    expect(metricFrom(compacted, 'tradesync_compaction_errors_total')).toBe(0);
    // Nothing new since: a second pass writes no snapshot.
    await first.gateway.compact();
    const again = await scrape(first.url);
    expect(metricFrom(again, 'tradesync_compactions_total')).toBe(2);
    expect(metricFrom(again, 'tradesync_snapshots_written_total')).toBe(2);
    await first.stop();

    await using second = await startGateway({ history }, { dataDir: first.dataDir, keepData: true });
    const restarted = await scrape(second.url);
    // One rebuild per stored stream, before the gateway listened.
    expect(metricFrom(restarted, 'tradesync_state_rebuild_seconds_count', { reason: 'start' })).toBe(2);
    expect(metricFrom(restarted, 'tradesync_state_rebuild_seconds_count', { reason: 'reset' })).toBe(0);
    expect(metricFrom(restarted, 'tradesync_state_rebuild_seconds_sum', { reason: 'start' })).toBeGreaterThan(0);
    expect(metricFrom(restarted, 'tradesync_state_rebuild_seconds_bucket', { reason: 'start', le: '+Inf' })).toBe(2);
    // The rebuilt state is the state that was compacted.
    expect(second.gateway.store.get('orders:acc1')?.head).toBe(10);
  });
});
