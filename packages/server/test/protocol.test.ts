import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { INITIAL_STATE_PARTS, parseServerMessage } from '@tradesync/protocol';
import { EmbeddedEngine } from '@tradesync/server';
import { balance, http, indicator, instance, order, position, publish, signal, startGateway, TestClient, tick, type Message } from '@tradesync/testing';
import { UnreadableStreamsEngine } from '@tradesync/testing/unreadable-engine';

const UTC_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Every message a client got so far is numbered 0, 1, 2, … in arrival order and is a valid server message. */
function expectWellFormedSequence(messages: readonly Message[]): void {
  expect(messages.map((m) => m.sequence_number)).toEqual(messages.map((_, i) => i));
  for (const m of messages) {
    expect(m.timestamp, `timestamp of ${m.type}`).toMatch(UTC_ISO);
    const parsed = parseServerMessage(m);
    expect(parsed.success, `${m.type} #${m.sequence_number} matches the contract: ${parsed.success ? '' : parsed.error.message}`).toBe(true);
  }
}

describe('connection lifecycle and sequence numbering', () => {
  it('greets every connection with `connected` at sequence 0 carrying a UUID, the heartbeat interval and a UTC time', async () => {
    await using gw = await startGateway({ heartbeat: { pingIntervalMs: 1234 } });
    await using client = await TestClient.connect(gw.wsUrl);
    const hello = client.messages[0]!;
    expect(hello).toMatchObject({ type: 'connected', sequence_number: 0, heartbeat_interval: 1234 });
    expect(hello.connection_id).toMatch(UUID);
    expect(hello.timestamp).toMatch(UTC_ISO);
    await using other = await TestClient.connect(gw.wsUrl);
    expect(other.messages[0]!.sequence_number).toBe(0);
    expect(other.messages[0]!.connection_id).not.toBe(hello.connection_id);
  });

  it('numbers replies, errors, live events and batch_update frames +1 each, with no repeats and no holes', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'market:BTC-USD' });
    await client.request('ping');
    await publish(gw.url, [tick('BTC-USD', '1.0')]);
    await client.next((m) => m.type === 'market:tick');
    await client.request('nonsense');
    await publish(gw.url, [tick('BTC-USD', '2.0'), tick('BTC-USD', '3.0')]);
    await client.next((m) => m.type === 'batch_update');
    await client.request('state_sync_request');
    await client.request('get_initial_state');
    await publish(gw.url, [tick('BTC-USD', '4.0')]);
    await client.next((m) => m.type === 'market:tick');
    await client.request('unsubscribe', { stream: 'market:BTC-USD' });

    expect(client.messages.map((m) => m.type)).toEqual([
      'connected',
      'subscribed',
      'pong',
      'market:tick',
      'error',
      'batch_update',
      'state_sync_response',
      'initial_state',
      'market:tick',
      'unsubscribed',
    ]);
    expectWellFormedSequence(client.messages);
  });

  it('counts the sequence per connection, so two clients of one stream see the same event under their own numbers', async () => {
    await using gw = await startGateway();
    await using a = await TestClient.connect(gw.wsUrl);
    await using b = await TestClient.connect(gw.wsUrl);
    await a.request('ping');
    await a.request('ping');
    await a.request('subscribe', { stream: 'market:ETH-USD' });
    await b.request('subscribe', { stream: 'market:ETH-USD' });
    await publish(gw.url, [tick('ETH-USD', '3000')]);
    const ea = await a.next((m) => m.type === 'market:tick');
    const eb = await b.next((m) => m.type === 'market:tick');
    expect(ea).toMatchObject({ sequence_number: 4, offset: 1 });
    expect(eb).toMatchObject({ sequence_number: 2, offset: 1 });
    expectWellFormedSequence(a.messages);
    expectWellFormedSequence(b.messages);
  });
});

describe('subscribe', () => {
  it('answers a subscribe without `since` with a snapshot of the current state at the head offset', async () => {
    await using gw = await startGateway();
    const o1 = order('acme');
    const o2 = order('acme');
    await publish(gw.url, [o1, o2]);
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: 'orders:acme' });
    expect(sub).toMatchObject({ type: 'subscribed', stream: 'orders:acme', offset: 2, recovered: false });
    expect(sub.events).toBeUndefined();
    expect(sub.snapshot).toMatchObject({ epoch: sub.epoch, offset: 2 });
    const state = (sub.snapshot as { state: { orders: Record<string, unknown> } }).state;
    expect(Object.keys(state.orders).sort()).toEqual([o1.data.order_id, o2.data.order_id].sort());
    expect(state.orders[o1.data.order_id]).toMatchObject({ price: '42000.00', quantity: '0.5' });
  });

  it('delivers live events after the subscribed reply starting at the reply offset + 1, without gaps', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [tick('SOL-USD', '100'), tick('SOL-USD', '101'), tick('SOL-USD', '102')]);
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: 'market:SOL-USD' });
    expect(sub.offset).toBe(3);
    for (const price of ['103', '104', '105']) await publish(gw.url, [tick('SOL-USD', price)]);
    await client.next((m) => m.type === 'market:tick' && m.offset === 6);
    const live = client.events('market:SOL-USD');
    expect(live.map((e) => e.offset)).toEqual([4, 5, 6]);
    for (const e of live) {
      expect(e).toMatchObject({ stream: 'market:SOL-USD', epoch: sub.epoch });
      expect(e.timestamp).toMatch(UTC_ISO);
    }
    expect(live.map((e) => (e.data as { price: string }).price)).toEqual(['103', '104', '105']);
  });

  it('recovers the missed events when `since` is still in the history window', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [tick('BTC-USD', '1'), tick('BTC-USD', '2')]);
    await using first = await TestClient.connect(gw.wsUrl);
    const sub = await first.request('subscribe', { stream: 'market:BTC-USD' });
    await publish(gw.url, [tick('BTC-USD', '3'), tick('BTC-USD', '4')]);
    await using again = await TestClient.connect(gw.wsUrl);
    const resumed = await again.request('subscribe', { stream: 'market:BTC-USD', since: { epoch: sub.epoch, offset: sub.offset } });
    expect(resumed).toMatchObject({ recovered: true, offset: 4, epoch: sub.epoch });
    expect(resumed.snapshot).toBeUndefined();
    expect((resumed.events as Array<{ offset: number }>).map((e) => e.offset)).toEqual([3, 4]);
  });

  it('falls back to a snapshot when `since` names an epoch the stream never had', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [tick('BTC-USD', '1')]);
    await using client = await TestClient.connect(gw.wsUrl);
    const resumed = await client.request('subscribe', { stream: 'market:BTC-USD', since: { epoch: 'not-this-one', offset: 1 } });
    expect(resumed).toMatchObject({ recovered: false, offset: 1 });
    expect(resumed.snapshot).toMatchObject({ offset: 1, state: { last: { price: '1' } } });
  });
});

describe('unsubscribe', () => {
  it('answers `unsubscribed` and delivers no event of that stream after the reply', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'market:BTC-USD' });
    await client.request('subscribe', { stream: 'market:ETH-USD' });
    await publish(gw.url, [tick('BTC-USD', '1')]);
    await client.next((m) => m.type === 'market:tick');
    const reply = await client.request('unsubscribe', { stream: 'market:BTC-USD' });
    expect(reply).toMatchObject({ type: 'unsubscribed', stream: 'market:BTC-USD' });
    // A BTC tick, then an ETH tick appended after it: once the ETH tick is here, a BTC one would have been too.
    await publish(gw.url, [tick('BTC-USD', '2')]);
    await publish(gw.url, [tick('ETH-USD', '3')]);
    await client.next((m) => m.type === 'market:tick' && m.stream === 'market:ETH-USD');
    const after = client.messages.filter((m) => m.sequence_number > reply.sequence_number);
    expect(after.map((m) => m.stream)).toEqual(['market:ETH-USD']);
    expect(client.events('market:BTC-USD').map((e) => e.offset)).toEqual([1]);
  });
});

describe('state_sync_request', () => {
  it('returns positions, active signals, state machines, indicators, pending orders and every stream position', async () => {
    await using gw = await startGateway();
    const pos = position('demo');
    const sig = signal('demo');
    const inst = instance('demo');
    const ord = order('demo');
    await publish(gw.url, [pos, balance('demo'), sig, signal('demo', { status: 'executed' }), inst, indicator('demo'), ord]);
    await using client = await TestClient.connect(gw.wsUrl);
    const reply = await client.request('state_sync_request', {});
    expect(reply).toMatchObject({ type: 'state_sync_response', success: true });
    const data = reply.data as Record<string, unknown>;
    expect(data.timestamp).toMatch(UTC_ISO);
    expect(data.session_id).toBeNull();
    expect(data.positions).toEqual([expect.objectContaining({ symbol: 'BTC-USD', quantity: '0.5' })]);
    expect(data.active_signals).toEqual([expect.objectContaining({ id: sig.data.id, status: 'pending' })]);
    expect(data.state_machine_state).toEqual([expect.objectContaining({ instance_id: inst.data.instance_id, state: 'MONITORING' })]);
    expect(data.indicator_values).toEqual({ 'BTC-USD': { rsi: '55.5' } });
    expect(data.pending_orders).toEqual([expect.objectContaining({ order_id: ord.data.order_id })]);
    const streams = data.streams as Record<string, { epoch: string; offset: number }>;
    expect(streams).toMatchObject({
      'portfolio:demo': { offset: 2 },
      'signals:demo': { offset: 2 },
      'state_machines:demo': { offset: 1 },
      'indicators:demo': { offset: 1 },
      'orders:demo': { offset: 1 },
    });
    for (const s of Object.values(streams)) expect(typeof s.epoch).toBe('string');
  });

  it('filters signals, state machines and orders by session_id, and reads the named account', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [
      signal('acct2', { id: 'sig-a', session_id: 'A' }),
      signal('acct2', { id: 'sig-b', session_id: 'B' }),
      instance('acct2', { instance_id: 'inst-a', session_id: 'A' }),
      instance('acct2', { instance_id: 'inst-b', session_id: 'B' }),
      order('acct2', { order_id: 'ord-a', session_id: 'A' }),
      order('acct2', { order_id: 'ord-b', session_id: 'B' }),
    ]);
    await using client = await TestClient.connect(gw.wsUrl);
    const reply = await client.request('state_sync_request', { account: 'acct2', session_id: 'A' });
    const data = reply.data as Record<string, Array<Record<string, unknown>>>;
    expect(reply.data).toMatchObject({ session_id: 'A', account: 'acct2' });
    expect(data.active_signals!.map((s) => s.id)).toEqual(['sig-a']);
    expect(data.state_machine_state!.map((s) => s.instance_id)).toEqual(['inst-a']);
    expect(data.pending_orders!.map((s) => s.order_id)).toEqual(['ord-a']);
  });
});

describe('state_sync_request when a part cannot be built', () => {
  it('says success: false with UNAVAILABLE, names the stream in failed_streams with its part null, and serves the rest; REST and subscribe agree; all heals', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-partial-'));
    const engine = new UnreadableStreamsEngine(new EmbeddedEngine({ dataDir }));
    await using gw = await startGateway({}, { engine, dataDir });
    const ord = order('demo');
    await publish(gw.url, [position('demo'), signal('demo'), ord, instance('demo'), indicator('demo')]);
    await engine.breakStreams('signals:demo');
    // The gateway re-reads the stream and finds it cannot: it knows its copy is behind.
    await vi.waitFor(() => expect(gw.gateway.store.unavailable('signals:demo')).toBeDefined());
    await using client = await TestClient.connect(gw.wsUrl);

    const reply = await client.request('state_sync_request', {});
    expect(parseServerMessage(reply).success).toBe(true);
    expect(reply).toMatchObject({ type: 'state_sync_response', success: false, error: { code: 'UNAVAILABLE' } });
    const data = reply.data as Record<string, unknown>;
    expect(data.failed_streams).toEqual([{ stream: 'signals:demo', code: 'UNAVAILABLE', message: expect.stringContaining('signals:demo') }]);
    expect(data.active_signals).toBeNull();
    expect(data.positions).toEqual([expect.objectContaining({ symbol: 'BTC-USD' })]);
    expect(data.pending_orders).toEqual([expect.objectContaining({ order_id: ord.data.order_id })]);
    expect(data.state_machine_state).toHaveLength(1);
    expect(data.indicator_values).toEqual({ 'BTC-USD': { rsi: '55.5' } });

    const rest = await http(gw.url, '/api/state/snapshot?streams=signals:demo,orders:demo');
    expect(rest.status).toBe(200);
    expect(rest.body).toMatchObject({ success: false, error: { code: 'UNAVAILABLE' }, active_signals: null, failed_streams: [{ stream: 'signals:demo' }] });
    expect(Object.keys(rest.body.snapshots as object)).toEqual(['orders:demo']);

    // A subscription is refused rather than served a copy known to be behind; the others work.
    await expect(client.request('subscribe', { stream: 'signals:demo' })).resolves.toMatchObject({ type: 'error', error: { code: 'UNAVAILABLE', message: expect.stringContaining('signals:demo') } });
    await expect(client.request('subscribe', { stream: 'orders:demo' })).resolves.toMatchObject({ type: 'subscribed', offset: 1 });

    engine.heal();
    // The gateway retries on its own and the stream is whole again.
    await vi.waitFor(() => expect(gw.gateway.store.unavailable('signals:demo')).toBeUndefined(), { timeout: 5000 });
    const healed = await client.request('state_sync_request', {});
    expect(healed).toMatchObject({ success: true, data: { failed_streams: [], active_signals: [expect.objectContaining({ status: 'pending' })] } });
    expect(healed).not.toHaveProperty('error');
    await expect(client.request('subscribe', { stream: 'signals:demo' })).resolves.toMatchObject({ type: 'subscribed', offset: 1 });
  });
});

describe('get_initial_state', () => {
  it('returns every part when include is omitted', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [balance('demo'), order('demo')]);
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'orders:demo' });
    const reply = await client.request('get_initial_state');
    expect(reply).toMatchObject({ type: 'initial_state', success: true });
    const data = reply.data as Record<string, Record<string, unknown>>;
    expect(Object.keys(data).sort()).toEqual([...INITIAL_STATE_PARTS].sort());
    expect(data.balances).toMatchObject({ USD: { total: '10000.00' } });
    expect(data.orders).toMatchObject({ count: 1, offset: 1 });
    expect(data.subscriptions).toMatchObject({ streams: [{ stream: 'orders:demo', offset: 1 }] });
    expect(data.connection).toMatchObject({ connection_id: client.messages[0]!.connection_id });
  });

  it('carries seed 004\'s fields: portfolio.last_updated, subscriptions.rooms, and the connection\'s counts of what it received by kind', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [balance('demo')]);
    await using client = await TestClient.connect(gw.wsUrl);
    for (const stream of ['portfolio:demo', 'orders:demo', 'market:BTC-USD']) await client.request('subscribe', { stream });
    await publish(gw.url, [position('demo'), order('demo'), order('demo'), tick('BTC-USD', '1'), tick('BTC-USD', '2'), tick('BTC-USD', '3')]);
    await vi.waitFor(() => expect(client.events().length).toBe(6));
    const reply = await client.request('get_initial_state');
    const data = reply.data as Record<string, Record<string, unknown>>;
    const lastPortfolioEvent = client.events('portfolio:demo').at(-1)!;
    expect(data.portfolio!.last_updated).toBe(lastPortfolioEvent.timestamp);
    expect(data.subscriptions!.rooms).toEqual(['portfolio:demo', 'orders:demo', 'market:BTC-USD']);
    expect(data.connection).toMatchObject({
      connected_at: expect.any(String),
      message_count: 4,
      portfolio_updates_received: 1,
      orders_received: 2,
      market_updates_received: 3,
    });
  });

  it('returns only the requested parts', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    const reply = await client.request('get_initial_state', { include: ['orders', 'connection'] });
    expect(Object.keys(reply.data as object).sort()).toEqual(['connection', 'orders']);
  });
});

describe('ping and ids', () => {
  it('answers ping with pong echoing the id and any data', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ id: 'p-1', type: 'ping', data: { t: 42 } });
    const pong = await client.next((m) => m.type === 'pong');
    expect(pong).toMatchObject({ id: 'p-1', data: { t: 42 } });
    client.send({ type: 'ping' });
    const bare = await client.next((m) => m.type === 'pong');
    expect(bare.id).toBeUndefined();
  });

  it('echoes the request id in the reply to every message type, errors included', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    const requests: Array<[string, Record<string, unknown> | undefined, string]> = [
      ['subscribe', { stream: 'market:BTC-USD' }, 'subscribed'],
      ['unsubscribe', { stream: 'market:BTC-USD' }, 'unsubscribed'],
      ['state_sync_request', {}, 'state_sync_response'],
      ['get_initial_state', { include: ['connection'] }, 'initial_state'],
      ['get_initial_state', { include: ['bogus'] }, 'error'],
      ['command', { action: 'cancel_order', order_id: 'x' }, 'command_result'],
      ['ping', undefined, 'pong'],
      ['auth', { token: 'whatever' }, 'authenticated'],
      ['no_such_type', undefined, 'error'],
    ];
    for (const [type, data, expected] of requests) {
      const id = `id-${type}-${expected}`;
      client.send(data === undefined ? { id, type } : { id, type, data });
      const reply = await client.next((m) => m.id === id);
      expect(reply.type, `reply to ${type}`).toBe(expected);
    }
    expectWellFormedSequence(client.messages);
  });
});

describe('batch_update', () => {
  it('delivers the events of one POST as a single batch_update, each keeping its stream, epoch and offset', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    const orders = await client.request('subscribe', { stream: 'orders:demo' });
    const market = await client.request('subscribe', { stream: 'market:BTC-USD' });
    const answer = await publish(gw.url, [order('demo'), tick('BTC-USD', '1'), order('demo'), tick('BTC-USD', '2')]);
    expect(answer.status).toBe(200);
    const batch = await client.next((m) => m.type === 'batch_update');
    const events = batch.events as Array<Record<string, unknown>>;
    expect(events.map((e) => [e.type, e.stream, e.offset])).toEqual([
      ['order:updated', 'orders:demo', 1],
      ['market:tick', 'market:BTC-USD', 1],
      ['order:updated', 'orders:demo', 2],
      ['market:tick', 'market:BTC-USD', 2],
    ]);
    for (const e of events) {
      expect(e.epoch).toBe(e.stream === 'orders:demo' ? orders.epoch : market.epoch);
      expect(e.timestamp).toMatch(UTC_ISO);
      expect(e.sequence_number).toBeUndefined();
    }
    // One frame for the four events: nothing else arrived.
    expect(client.messages.map((m) => m.type)).toEqual(['connected', 'subscribed', 'subscribed', 'batch_update']);
    expectWellFormedSequence(client.messages);
  });

  it('sends a lone event as a plain event frame, not a batch of one', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'orders:demo' });
    await publish(gw.url, [order('other'), order('demo')]);
    const live = await client.next((m) => m.type !== 'subscribed');
    expect(live).toMatchObject({ type: 'order:updated', stream: 'orders:demo', offset: 1 });
  });
});
