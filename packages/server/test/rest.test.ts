import { describe, expect, it, vi } from 'vitest';
import type { CommandHandler } from '../src/commands.js';
import { capturedLogger } from './support/captured-logger.js';
import { http, metric, metricFrom, order, position, publish, signal, startGateway, TestClient, tick, type TestGateway } from '@tradesync/testing';

const UTC_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const streamPath = (stream: string, query = '') => `/api/v1/streams/${encodeURIComponent(stream)}/events${query}`;

/**
 * A fake engine behind commands: `cancel_order` appends `order:closed` and answers
 * after a broker round trip (a turn of the event loop, so the fan-out runs first);
 * `always_reject` fails without appending anything.
 */
function fakeBroker(gateway: () => TestGateway): CommandHandler & { calls: Array<{ action: string; account: string }> } {
  const calls: Array<{ action: string; account: string }> = [];
  return {
    actions: ['cancel_order', 'always_reject'],
    calls,
    async handle(command, context) {
      calls.push({ action: command.action, account: context.account });
      if (command.action === 'always_reject') return { success: false, error: { code: 'REJECTED', message: 'the broker said no' } };
      const orderId = String(command.order_id);
      const [closed] = await gateway().gateway.publish([{ stream: `orders:${context.account}`, type: 'order:closed', data: { order_id: orderId, status: 'cancelled' } }]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { success: true, result: { order_id: orderId, offset: closed!.offset } };
    },
  };
}

describe('GET /health', () => {
  it('reports ok with the engine, connection and stream counts', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [tick('BTC-USD', '1')]);
    await using _client = await TestClient.connect(gw.wsUrl);
    const { status, body } = await http(gw.url, '/health');
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'ok', engine: { kind: 'embedded', ok: true }, connections: 1, streams: 1 });
    expect(body.timestamp).toMatch(UTC_ISO);
  });
});

describe('GET /metrics', () => {
  it('exposes every contract metric in Prometheus text format', async () => {
    await using gw = await startGateway();
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of [
      'tradesync_connections',
      'tradesync_messages_in_total',
      'tradesync_frames_out_total',
      'tradesync_events_delivered_total',
      'tradesync_events_appended_total',
      'tradesync_append_to_send_seconds',
      'tradesync_slow_consumer_closes_total',
      'tradesync_resumes_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    expect(text).toMatch(/^# TYPE tradesync_append_to_send_seconds histogram/m);
  });

  it('moves the counters with real traffic: connections, messages, appends, append-to-send latency and resumes', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: 'market:BTC-USD' });
    await publish(gw.url, [tick('BTC-USD', '1'), tick('BTC-USD', '2')]);
    await client.next((m) => m.type === 'batch_update');
    await client.request('subscribe', { stream: 'market:BTC-USD', since: { epoch: sub.epoch, offset: 1 } });
    await client.request('subscribe', { stream: 'market:BTC-USD', since: { epoch: 'gone', offset: 1 } });
    await publish(gw.url, [order('demo')]);

    await vi.waitFor(async () => {
      const text = (await http(gw.url, '/metrics')).text;
      expect(metricFrom(text, 'tradesync_connections')).toBe(1);
      expect(metricFrom(text, 'tradesync_messages_in_total', { type: 'subscribe' })).toBe(3);
      expect(metricFrom(text, 'tradesync_frames_out_total')).toBe(client.messages.length);
      expect(metricFrom(text, 'tradesync_events_delivered_total')).toBe(2);
      expect(metricFrom(text, 'tradesync_events_appended_total', { kind: 'market' })).toBe(2);
      expect(metricFrom(text, 'tradesync_events_appended_total', { kind: 'orders' })).toBe(1);
      expect(metricFrom(text, 'tradesync_append_to_send_seconds_count')).toBeGreaterThan(0);
      expect(metricFrom(text, 'tradesync_resumes_total', { result: 'recovered' })).toBe(1);
      expect(metricFrom(text, 'tradesync_resumes_total', { result: 'snapshot' })).toBe(1);
    });
    client.close();
    await client.closed;
    await vi.waitFor(async () => expect(await metric(gw.url, 'tradesync_connections')).toBe(0));
  });
});

describe('GET /api/state/snapshot', () => {
  it('returns the same data as state_sync_response, for the default or the named account and session', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [position('demo'), order('demo', { order_id: 'o-demo' })]);
    await publish(gw.url, [signal('acme', { id: 'a1', session_id: 'S1' }), signal('acme', { id: 'a2', session_id: 'S2' }), order('acme', { order_id: 'o-acme', session_id: 'S2' })]);

    const demo = await http(gw.url, '/api/state/snapshot');
    expect(demo.status).toBe(200);
    expect(demo.body).toMatchObject({ account: 'demo', session_id: null, positions: [{ symbol: 'BTC-USD' }], pending_orders: [{ order_id: 'o-demo' }] });

    const acme = await http(gw.url, '/api/state/snapshot?account=acme&session_id=S2');
    expect(acme.body).toMatchObject({ account: 'acme', session_id: 'S2', positions: [], pending_orders: [{ order_id: 'o-acme' }] });
    expect((acme.body.active_signals as Array<{ id: string }>).map((s) => s.id)).toEqual(['a2']);
    expect(acme.body.streams).toMatchObject({ 'signals:acme': { offset: 2 }, 'orders:acme': { offset: 1 } });

    await using client = await TestClient.connect(gw.wsUrl);
    const ws = await client.request('state_sync_request', { account: 'acme', session_id: 'S2' });
    const { timestamp: _a, ...overWs } = ws.data as Record<string, unknown>;
    // REST carries the reply's `success` beside the data.
    const { timestamp: _b, success, ...overRest } = acme.body;
    expect(success).toBe(ws.success);
    expect(overRest).toEqual(overWs);
  });

  it('answers a malformed account with 400', async () => {
    await using gw = await startGateway();
    const res = await http(gw.url, '/api/state/snapshot?account=%20bad%20');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, error: { code: 'INVALID_MESSAGE' } });
  });
});

describe('GET /api/v1/signals', () => {
  it('returns the signals changed at or after `since`, with the stream position', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [signal('demo', { id: 'old', created_at: '2020-01-01T00:00:00.000Z' }), signal('demo', { id: 'new', created_at: '2030-01-01T00:00:00.000Z' })]);
    const all = await http(gw.url, '/api/v1/signals');
    expect((all.body.signals as Array<{ id: string }>).map((s) => s.id).sort()).toEqual(['new', 'old']);
    const recent = await http(gw.url, `/api/v1/signals?since=${encodeURIComponent('2025-06-01T00:00:00Z')}`);
    expect(recent.status).toBe(200);
    expect(recent.body).toMatchObject({ account: 'demo', offset: 2 });
    expect((recent.body.signals as Array<{ id: string }>).map((s) => s.id)).toEqual(['new']);
    expect(typeof recent.body.epoch).toBe('string');
  });

  it('returns a signal executed or rejected after `since` even though it was created before, once, in its latest version', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [
      signal('demo', { id: 'ran', created_at: '2020-01-01T00:00:00.000Z' }),
      signal('demo', { id: 'refused', created_at: '2020-01-01T00:00:00.000Z' }),
      signal('demo', { id: 'quiet', created_at: '2020-01-01T00:00:00.000Z' }),
    ]);
    await publish(gw.url, [
      { stream: 'signals:demo', type: 'signal:executed', data: { id: 'ran', status: 'executed', executed_at: '2030-01-01T00:00:00.000Z' } },
      { stream: 'signals:demo', type: 'signal:rejected', data: { id: 'refused', status: 'rejected', rejected_at: '2030-01-02T00:00:00.000Z' } },
    ]);
    const res = await http(gw.url, `/api/v1/signals?since=${encodeURIComponent('2025-06-01T00:00:00Z')}`);
    const got = (res.body.signals as Array<{ id: string; status: string }>).map((s) => `${s.id}:${s.status}`).sort();
    expect(got).toEqual(['ran:executed', 'refused:rejected']);
  });

  it('answers a `since` that is not a time with 400', async () => {
    await using gw = await startGateway();
    const res = await http(gw.url, '/api/v1/signals?since=yesterday-ish');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: 'INVALID_MESSAGE' } });
  });
});

describe('GET /api/v1/streams/:stream/events', () => {
  it('returns the events after the given offset with the epoch and head', async () => {
    await using gw = await startGateway();
    await publish(gw.url, ['1', '2', '3', '4', '5'].map((p) => tick('BTC-USD', p)));
    const res = await http(gw.url, streamPath('market:BTC-USD', '?after=2'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ stream: 'market:BTC-USD', head: 5, first_offset: 1 });
    const events = res.body.events as Array<{ offset: number; epoch: string; data: { price: string } }>;
    expect(events.map((e) => [e.offset, e.data.price])).toEqual([
      [3, '3'],
      [4, '4'],
      [5, '5'],
    ]);
    for (const e of events) expect(e.epoch).toBe(res.body.epoch);
    const limited = await http(gw.url, streamPath('market:BTC-USD', '?after=0&limit=2'));
    expect((limited.body.events as unknown[]).length).toBe(2);
  });

  it('answers 410 HISTORY_TRIMMED for an offset compaction removed, and serves what is kept', async () => {
    await using gw = await startGateway({ history: { maxEvents: 2, snapshotEvery: 1 } });
    await publish(gw.url, ['1', '2', '3', '4', '5'].map((p) => tick('BTC-USD', p)));
    await gw.gateway.compact();
    const gone = await http(gw.url, streamPath('market:BTC-USD', '?after=0'));
    expect(gone.status).toBe(410);
    expect(gone.body).toMatchObject({ success: false, error: { code: 'HISTORY_TRIMMED' }, first_offset: 4, head: 5 });
    const kept = await http(gw.url, streamPath('market:BTC-USD', '?after=3'));
    expect(kept.status).toBe(200);
    expect((kept.body.events as Array<{ offset: number }>).map((e) => e.offset)).toEqual([4, 5]);
  });

  it('answers a malformed stream or offset with 400', async () => {
    await using gw = await startGateway();
    expect((await http(gw.url, streamPath('foo:bar'))).body).toMatchObject({ error: { code: 'INVALID_STREAM' } });
    const bad = await http(gw.url, streamPath('market:BTC-USD', '?after=-1'));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'INVALID_MESSAGE' } });
  });
});

describe('POST /api/v1/events', () => {
  it('appends the events in order and answers with the offset each was given', async () => {
    await using gw = await startGateway();
    const answer = await publish(gw.url, [order('demo'), tick('BTC-USD', '1'), order('demo')]);
    expect(answer.status).toBe(200);
    expect(answer.body.success).toBe(true);
    const offsets = answer.body.offsets as Array<{ stream: string; offset: number; epoch: string; type: string }>;
    expect(offsets.map((o) => [o.stream, o.offset, o.type])).toEqual([
      ['orders:demo', 1, 'order:updated'],
      ['market:BTC-USD', 1, 'market:tick'],
      ['orders:demo', 2, 'order:updated'],
    ]);
    const wrapped = await http(gw.url, '/api/v1/events', { body: { events: [order('demo')] } });
    expect((wrapped.body.offsets as Array<{ offset: number }>)[0]!.offset).toBe(3);
  });
});

describe('POST /api/v1/commands', () => {
  it('answers 400 UNKNOWN_COMMAND when no engine accepts commands', async () => {
    await using gw = await startGateway();
    const res = await http(gw.url, '/api/v1/commands', { body: { action: 'cancel_order', order_id: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, error: { code: 'UNKNOWN_COMMAND' } });
  });

  it('runs a command through the handler and answers command_result; a rejection is 422; an unknown action 400', async () => {
    // The broker appends through the gateway it belongs to; it is only called once `started` exists.
    const broker = fakeBroker(() => started);
    await using started = await startGateway({}, { commands: broker });
    await publish(started.url, [order('demo', { order_id: 'o-1' })]);
    const ok = await http(started.url, '/api/v1/commands', { body: { action: 'cancel_order', order_id: 'o-1', command_id: 'c-1' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ type: 'command_result', success: true, action: 'cancel_order', command_id: 'c-1', result: { order_id: 'o-1', offset: 2 } });
    expect(broker.calls).toEqual([{ action: 'cancel_order', account: 'demo' }]);
    const state = await http(started.url, '/api/state/snapshot');
    expect(state.body.pending_orders).toEqual([]);

    const no = await http(started.url, '/api/v1/commands', { body: { action: 'always_reject' } });
    expect(no.status).toBe(422);
    expect(no.body).toMatchObject({ type: 'command_result', success: false, error: { code: 'REJECTED' } });
    const unknown = await http(started.url, '/api/v1/commands', { body: { action: 'launch_rocket' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ error: { code: 'UNKNOWN_COMMAND' } });
    const malformed = await http(started.url, '/api/v1/commands', { body: { order_id: 'no action' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ error: { code: 'INVALID_MESSAGE' } });
  });

  it.each([
    ['an empty account', ''],
    ['a malformed account', ' not valid '],
  ])('answers a command naming %s with 400 INVALID_MESSAGE instead of hanging', async (_what, account) => {
    await using started = await startGateway({}, { commands: fakeBroker(() => started) });
    const res = await http(started.url, '/api/v1/commands', { body: { action: 'cancel_order', account } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, error: { code: 'INVALID_MESSAGE' } });
  });

  it('sends command_result over WebSocket before the events the command appended', async () => {
    await using started = await startGateway({}, { commands: fakeBroker(() => started) });
    await publish(started.url, [order('demo', { order_id: 'o-9' })]);
    await using client = await TestClient.connect(started.wsUrl);
    const sub = await client.request('subscribe', { stream: 'orders:demo' });
    expect(sub.offset).toBe(1);
    const result = await client.request('command', { action: 'cancel_order', order_id: 'o-9', command_id: 'cmd-9' });
    expect(result).toMatchObject({ type: 'command_result', success: true, command_id: 'cmd-9', result: { offset: 2 } });
    const closed = await client.next((m) => m.type === 'order:closed');
    expect(closed).toMatchObject({ stream: 'orders:demo', offset: 2, data: { order_id: 'o-9', status: 'cancelled' } });
    expect(closed.sequence_number).toBe(result.sequence_number + 1);
  });

  it('answers a command the handler does not know over WebSocket with a failed command_result', async () => {
    await using started = await startGateway({}, { commands: fakeBroker(() => started) });
    await using client = await TestClient.connect(started.wsUrl);
    const result = await client.request('command', { action: 'launch_rocket' });
    expect(result).toMatchObject({ type: 'command_result', success: false, error: { code: 'UNKNOWN_COMMAND' } });
  });

  it('answers 504 TIMEOUT over REST, and TIMEOUT over WebSocket, when the handler never answers', { timeout: 10_000 }, async () => {
    const silent: CommandHandler = { actions: ['cancel_order'], handle: () => new Promise(() => undefined) };
    await using started = await startGateway({}, { commands: silent, commandTimeoutMs: 100 });
    const res = await http(started.url, '/api/v1/commands', { body: { action: 'cancel_order', order_id: 'o-1', command_id: 'c-1' } });
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({ type: 'command_result', success: false, action: 'cancel_order', command_id: 'c-1', error: { code: 'TIMEOUT' } });
    await using client = await TestClient.connect(started.wsUrl);
    const result = await client.request('command', { action: 'cancel_order', order_id: 'o-1', command_id: 'c-2' });
    expect(result).toMatchObject({ type: 'command_result', success: false, command_id: 'c-2', error: { code: 'TIMEOUT' } });
  });
});

describe('request logging', () => {
  it('logs one line per request at debug (method, url, status, ms), and none above it', async () => {
    const debug = capturedLogger('debug');
    {
      await using gw = await startGateway({}, { logger: debug.logger });
      expect((await http(gw.url, '/api/v1/events', { body: [order('acc1')] })).status).toBe(200);
      await vi.waitFor(() => expect(debug.lines.filter((l) => l.msg === 'request')).toHaveLength(1));
      expect(debug.lines.find((l) => l.msg === 'request')).toMatchObject({ level: 20, method: 'POST', url: '/api/v1/events', status: 200, ms: expect.any(Number) });
    }
    const info = capturedLogger('info');
    await using gw = await startGateway({}, { logger: info.logger });
    expect((await http(gw.url, '/api/v1/events', { body: [order('acc1')] })).status).toBe(200);
    expect(info.lines.filter((l) => l.msg === 'request')).toEqual([]);
  });
});

describe('POST /api/logs', () => {
  it('accepts only WARN and ERROR entries, logs them as structured dashboard logs and counts the rest as rejected', async () => {
    const { logger, lines } = capturedLogger('info');
    await using gw = await startGateway({}, { logger });
    const res = await http(gw.url, '/api/logs', {
      body: {
        logs: [
          { level: 'warn', message: 'socket slow', component: 'ws' },
          { level: 'ERROR', message: 'render failed' },
          { level: 'info', message: 'too chatty' },
          { level: 'debug', message: 'way too chatty' },
          { message: 'no level' },
          'not an object',
        ],
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, accepted: 2, rejected: 4 });
    await vi.waitFor(() => expect(lines.filter((l) => l.source === 'dashboard')).toHaveLength(2));
    const logged = lines.filter((l) => l.source === 'dashboard');
    expect(logged.map((l) => [l.level, l.msg])).toEqual([
      [40, 'socket slow'],
      [50, 'render failed'],
    ]);
    expect(logged[0]).toMatchObject({ component: 'ws' });
    const bad = await http(gw.url, '/api/logs', { body: { logs: 'nope' } });
    expect(bad.status).toBe(400);
  });
});

describe('GET /api/admin/websocket/connections', () => {
  it('lists each connection with its id, subscriptions, counters and last sequence number', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'market:BTC-USD' });
    await publish(gw.url, [tick('BTC-USD', '1')]);
    await client.next((m) => m.type === 'market:tick');
    const res = await http(gw.url, '/api/admin/websocket/connections');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      count: 1,
      connections: [
        {
          connection_id: client.messages[0]!.connection_id,
          authenticated: true,
          subscriptions: [{ stream: 'market:BTC-USD', offset: 1 }],
          messages_in: 1,
          frames_out: 3,
          events_out: 1,
          last_sequence_number: 2,
        },
      ],
    });
    client.close();
    await client.closed;
    await vi.waitFor(async () => expect((await http(gw.url, '/api/admin/websocket/connections')).body.count).toBe(0));
  });
});

describe('large payloads (seed 002: live messages under 10 KB, details by link)', () => {
  const pattern = (id: string, extra: Record<string, unknown> = {}) => ({
    stream: 'signals:demo',
    type: 'pattern_detected',
    data: { id, symbol: 'BTC-USD', pattern_type: 'SPRING', confidence_score: 82, phase: 'C', test_confirmed: true, ...extra },
  });

  it('gives pattern_detected a full_details_url that GET /api/v1/patterns/{id} answers with the whole pattern', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'signals:demo' });
    await publish(gw.url, [pattern('pat-1', { points: [1, 2, 3] })]);
    const live = await client.next((m) => m.type === 'pattern_detected');
    const url = (live.data as { full_details_url: string }).full_details_url;
    expect(url).toBe('/api/v1/patterns/pat-1?account=demo');
    const details = await http(gw.url, url);
    expect(details.status).toBe(200);
    expect(details.body).toMatchObject({ account: 'demo', pattern: { id: 'pat-1', points: [1, 2, 3], full_details_url: url } });
    const missing = await http(gw.url, '/api/v1/patterns/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ success: false, error: { code: 'NOT_FOUND' } });
    // A producer's own link is kept.
    await publish(gw.url, [pattern('pat-2', { full_details_url: 'https://engine.example/p/2' })]);
    const own = await client.next((m) => m.type === 'pattern_detected');
    expect((own.data as { full_details_url: string }).full_details_url).toBe('https://engine.example/p/2');
  });

  it('warns once a minute per type, and counts every one, when a live event is over 10 KB', async () => {
    const { logger, lines } = capturedLogger('warn');
    await using gw = await startGateway({}, { logger });
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'orders:demo' });
    await publish(gw.url, [order('demo', { note: 'x'.repeat(11_000) }), order('demo', { note: 'y'.repeat(11_000) }), order('demo')]);
    await vi.waitFor(() => expect(client.events('orders:demo')).toHaveLength(3));
    expect(await metric(gw.url, 'tradesync_large_events_total', { type: 'order:updated' })).toBe(2);
    const warned = lines.filter((l) => String(l.msg).includes('over 10 KB'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ type: 'order:updated', stream: 'orders:demo' });
  });
});
