/**
 * Session-scoped subscriptions (seed 001, Story 1 AC3: `subscribe('state_machines',
 * {session_id})`), over real sockets: a subscription with `params.session_id` sees only
 * that session's entities (and the account's) — in its snapshot, its replayed events, its
 * live events and its checksums — while an unscoped one sees everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateForSession, stateChecksum, type StreamState } from '@tradesync/protocol';
import { order, publish, startGateway, TestClient, tick, type Message, type TestGateway } from '@tradesync/testing';
import { Replica } from '@tradesync/testing/replica';

const instance = (account: string, id: string, session: string | null, state = 'MONITORING') => ({
  stream: `state_machines:${account}`,
  type: 'instance_added',
  data: { instance_id: id, session_id: session, strategy: 'wyckoff', symbol: 'BTC-USD', state },
});
const change = (account: string, id: string, state: string) => ({
  stream: `state_machines:${account}`,
  type: 'state_change',
  data: { instance_id: id, state, previous_state: 'MONITORING' },
});

/** The live events a client received for a stream (flattening batches). */
const liveOf = (client: TestClient, stream: string) => client.events(stream).map((e) => ({ offset: e.offset, data: e.data as Record<string, unknown> }));

describe('session-scoped subscriptions', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({ positionIntervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it("gives a state_machines subscription of session A only A's instances: snapshot, live events and checksums", async () => {
    const stream = 'state_machines:sess1';
    await publish(gw.url, [instance('sess1', 'a1', 'A'), instance('sess1', 'b1', 'B'), instance('sess1', 'n1', null)]);
    await using scoped = await TestClient.connect(gw.wsUrl);
    await using all = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(scoped);
    const reply = await scoped.request('subscribe', { stream, params: { session_id: 'A' } });
    await all.request('subscribe', { stream });
    expect(reply).toMatchObject({ type: 'subscribed', session_id: 'A', offset: 3 });
    const snapshot = (reply.snapshot as { state: { instances: Record<string, unknown> } }).state;
    expect(Object.keys(snapshot.instances)).toEqual(['a1']);
    expect(reply.checksum).toBe(stateChecksum(snapshot));

    // B's changes, then A's: the scoped subscriber is given A's only.
    await publish(gw.url, [change('sess1', 'b1', 'SIGNAL_DETECTED')]);
    await publish(gw.url, [instance('sess1', 'b2', 'B')]);
    await publish(gw.url, [change('sess1', 'a1', 'ENTRY_PENDING')]);
    await scoped.next((m) => m.type === 'state_change' && m.offset === 6);
    await all.next((m) => m.offset === 6);
    expect(liveOf(scoped, stream).map((e) => [e.offset, e.data.instance_id])).toEqual([[6, 'a1']]);
    expect(liveOf(all, stream).map((e) => e.offset)).toEqual([4, 5, 6]);

    // Its position's checksum is of A's view; the test replica checks it matches what it holds.
    gw.gateway.ctx.positions.tick();
    const position = await scoped.next((m) => m.type === 'stream_position');
    const entry = gw.gateway.store.get(stream)!;
    expect(position).toMatchObject({ offset: 6, checksum: stateChecksum(stateForSession('state_machines', entry.state, 'A')) });
    const full = await all.next((m) => m.type === 'stream_position');
    expect(full.checksum).toBe(stateChecksum(entry.state));
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(stream)!.state).toEqual(stateForSession('state_machines', entry.state, 'A'));
    expect(replica.streams.get(stream)!.verified).toBe(1);
  });

  it("replays only the session's events on a resume, and filters a full_update's instances", async () => {
    const stream = 'state_machines:sess2';
    await publish(gw.url, [instance('sess2', 'a1', 'A'), instance('sess2', 'b1', 'B')]);
    await using first = await TestClient.connect(gw.wsUrl);
    const reply = await first.request('subscribe', { stream, params: { session_id: 'A' } });
    first.close();
    await publish(gw.url, [
      change('sess2', 'b1', 'EXITING'),
      change('sess2', 'a1', 'POSITION_OPEN'),
      {
        stream,
        type: 'full_update',
        data: {
          instances: [
            { instance_id: 'a2', session_id: 'A', strategy: 'wyckoff', symbol: 'ETH-USD', state: 'MONITORING' },
            { instance_id: 'b3', session_id: 'B', strategy: 'wyckoff', symbol: 'ETH-USD', state: 'MONITORING' },
          ],
        },
      },
      change('sess2', 'b3', 'EXITING'),
    ]);
    await using second = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.streams.set(stream, { epoch: reply.epoch as string, offset: reply.offset as number, state: (reply.snapshot as { state: StreamState }).state, jumps: true, verified: 0 });
    replica.attach(second);
    const resumed = await second.request('subscribe', { stream, since: { epoch: reply.epoch, offset: reply.offset }, params: { session_id: 'A' } });
    expect(resumed).toMatchObject({ recovered: true, offset: 6, session_id: 'A' });
    const events = resumed.events as Array<{ type: string; offset: number; data: { instance_id?: string; instances?: Array<{ instance_id: string }> } }>;
    expect(events.map((e) => [e.type, e.offset])).toEqual([
      ['state_change', 4],
      ['full_update', 5],
    ]);
    expect(events[1]!.data.instances!.map((i) => i.instance_id)).toEqual(['a2']);
    replica.consume();
    expect(replica.problems).toEqual([]);
    const entry = gw.gateway.store.get(stream)!;
    expect(replica.streams.get(stream)!.state).toEqual(stateForSession('state_machines', entry.state, 'A'));
  });

  it('scopes orders, signals and positions that carry a session, keeps account-wide entities, and leaves market streams whole', async () => {
    await publish(gw.url, [
      order('sess3', { order_id: 'oa', session_id: 'A' }),
      order('sess3', { order_id: 'ob', session_id: 'B' }),
      { stream: 'signals:sess3', type: 'signal:new', data: { id: 'sa', symbol: 'BTC-USD', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: 'A' } },
      { stream: 'signals:sess3', type: 'signal:new', data: { id: 'sb', symbol: 'BTC-USD', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: 'B' } },
      { stream: 'portfolio:sess3', type: 'position:updated', data: { symbol: 'BTC-USD', side: 'long', quantity: '1', avg_price: '1', mark_price: '1', unrealized_pnl: '0', session_id: 'B' } },
      { stream: 'portfolio:sess3', type: 'position:updated', data: { symbol: 'ETH-USD', side: 'long', quantity: '1', avg_price: '1', mark_price: '1', unrealized_pnl: '0' } },
      { stream: 'portfolio:sess3', type: 'balance:updated', data: { currency: 'USD', total: '1', available: '1', reserved: '0' } },
      tick('SESS-3', '1'),
    ]);
    await using client = await TestClient.connect(gw.wsUrl);
    const params = { session_id: 'A' };
    const orders = await client.request('subscribe', { stream: 'orders:sess3', params });
    const signals = await client.request('subscribe', { stream: 'signals:sess3', params });
    const portfolio = await client.request('subscribe', { stream: 'portfolio:sess3', params });
    const market = await client.request('subscribe', { stream: 'market:SESS-3', params });
    const state = (m: Message) => (m.snapshot as { state: Record<string, Record<string, unknown>> }).state;
    expect(Object.keys(state(orders).orders!)).toEqual(['oa']);
    expect(Object.keys(state(signals).signals!)).toEqual(['sa']);
    expect(Object.keys(state(portfolio).positions!)).toEqual(['ETH-USD']);
    expect(Object.keys(state(portfolio).balances!)).toEqual(['USD']);
    expect(market.session_id).toBeUndefined();
    expect(state(market)).toEqual(gw.gateway.store.get('market:SESS-3')!.state);
    // B's order fill is not sent to A; A's is.
    await publish(gw.url, [order('sess3', { order_id: 'ob', session_id: 'B', status: 'filled' }), order('sess3', { order_id: 'oa', session_id: 'A', status: 'filled' })]);
    await client.next((m) => (m.type === 'order:updated' && m.offset === 4) || (m.type === 'batch_update' && (m.events as Message[]).some((e) => e.offset === 4)));
    expect(liveOf(client, 'orders:sess3').map((e) => e.data.order_id)).toEqual(['oa']);
  });
});
