/**
 * Freshness on the wire, over real sockets: the checksum in `subscribed`, the
 * `stream_position` messages (after the events they cover, on every interval for a
 * stream with events and every sixth for a quiet one, one checksum per offset for all
 * subscribers), and conflated subscriptions (`max_rate`: market and indicators only,
 * newest event per entity, at most max_rate frames a second, a resume replaying the
 * newest per entity).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSITION_QUIET_EVERY, REPLY_TYPES, stateChecksum, type StreamState } from '@tradesync/protocol';
import { order, publish, startGateway, TestClient, tick, type Message, type TestGateway } from '@tradesync/testing';
import { Replica } from '@tradesync/testing/replica';

const indicator = (account: string, symbol: string, name: string, value: string) => ({
  stream: `indicators:${account}`,
  type: 'indicator:updated',
  data: { symbol, name, value },
});

/** Live events of `stream` in the frames received so far, one list per frame. */
function framesOf(client: TestClient, stream: string): number[][] {
  const frames: number[][] = [];
  for (const m of client.messages) {
    const events = m.type === 'batch_update' ? (m.events as Message[]) : (REPLY_TYPES as readonly string[]).includes(m.type) ? [] : [m];
    const offsets = events.filter((e) => e.stream === stream).map((e) => e.offset as number);
    if (offsets.length > 0) frames.push(offsets);
  }
  return frames;
}

describe('stream positions and checksums', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    // The timer stays out of the way (an hour): each test ticks the positions itself.
    gw = await startGateway({ positionIntervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it('announces the position interval in `connected`', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    expect(client.messages[0]).toMatchObject({ type: 'connected', position_interval_ms: 3_600_000 });
  });

  it('gives the checksum of the state at the reply offset in `subscribed`, for a snapshot and for replayed events', async () => {
    await publish(gw.url, [order('ck1', { order_id: 'a' }), order('ck1', { order_id: 'b', symbol: 'ETH-USD' })]);
    await using client = await TestClient.connect(gw.wsUrl);
    const fresh = await client.request('subscribe', { stream: 'orders:ck1' });
    const snapshot = fresh.snapshot as { state: StreamState };
    expect(fresh.checksum).toMatch(/^[0-9a-f]{8}$/);
    expect(fresh.checksum).toBe(stateChecksum(snapshot.state));
    expect(fresh.checksum).toBe(stateChecksum(gw.gateway.store.get('orders:ck1')!.state));

    await publish(gw.url, [order('ck1', { order_id: 'c' })]);
    await using again = await TestClient.connect(gw.wsUrl);
    const resumed = await again.request('subscribe', { stream: 'orders:ck1', since: { epoch: fresh.epoch, offset: fresh.offset } });
    expect(resumed).toMatchObject({ recovered: true, offset: 3 });
    expect(resumed.checksum).toBe(stateChecksum(gw.gateway.store.get('orders:ck1')!.state));
  });

  it('sends stream_position after every event up to its offset, with the checksum of the state there', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(client);
    await client.request('subscribe', { stream: 'orders:ck2' });
    await publish(gw.url, [order('ck2', { order_id: 'a' }), order('ck2', { order_id: 'b' }), order('ck2', { order_id: 'a', status: 'filled' })]);
    await client.next((m) => (m.type === 'order:updated' && m.offset === 3) || (m.type === 'batch_update' && (m.events as Message[]).some((e) => e.offset === 3)));
    gw.gateway.ctx.positions.tick();
    const position = await client.next((m) => m.type === 'stream_position');
    expect(position).toMatchObject({ type: 'stream_position', stream: 'orders:ck2', offset: 3, epoch: gw.gateway.store.get('orders:ck2')!.epoch });
    expect(position.checksum).toBe(stateChecksum(gw.gateway.store.get('orders:ck2')!.state));
    expect(typeof position.sequence_number).toBe('number');
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get('orders:ck2')!.verified).toBe(1);
  });

  it('writes the events a tick finds queued before the position (published and ticked in one turn)', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(client);
    await client.request('subscribe', { stream: 'orders:ck3' });
    // Appended and applied, but their frame is only due on the next turn: the tick must flush them first.
    await gw.gateway.publish([order('ck3', { order_id: 'x' }), order('ck3', { order_id: 'y' })]);
    gw.gateway.ctx.positions.tick();
    const position = await client.next((m) => m.type === 'stream_position');
    expect(position.offset).toBe(2);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get('orders:ck3')!.verified).toBe(1);
  });

  it(`sends a quiet stream's position every ${POSITION_QUIET_EVERY} ticks and a busy one's every tick`, async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'orders:quiet' });
    await client.request('subscribe', { stream: 'orders:busy' });
    const positions = (stream: string) => client.messages.filter((m) => m.type === 'stream_position' && m.stream === stream).length;
    const ticks = 2 * POSITION_QUIET_EVERY + 1;
    for (let i = 0; i < ticks; i++) {
      await publish(gw.url, [order('busy', { order_id: `o${i}` })]);
      await client.next((m) => m.type === 'order:updated' && m.stream === 'orders:busy' && m.offset === i + 1);
      gw.gateway.ctx.positions.tick();
      await client.request('ping');
    }
    // The first tick announces both; then the quiet one only every sixth.
    expect(positions('orders:quiet')).toBe(1 + Math.floor((ticks - 1) / POSITION_QUIET_EVERY));
    expect(positions('orders:busy')).toBe(ticks);
  });

  it('spreads a tick with many due streams over steps instead of sending them all in one turn', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const accounts = Array.from({ length: 40 }, (_, i) => `spread${i}`);
    const streams = accounts.map((account) => `orders:${account}`);
    await publish(gw.url, accounts.map((account) => order(account, { order_id: 'a' })));
    for (const stream of streams) await client.request('subscribe', { stream });
    const sent = async () => (await gw.gateway.metrics.positionsSent.get()).values[0]?.value ?? 0;
    const before = await sent();
    gw.gateway.ctx.positions.tick();
    // In the tick's own turn: the first step only (8 streams, see MIN_PER_STEP), the rest later.
    expect((await sent()) - before).toBe(8);
    const positions = new Set<string>();
    while (positions.size < streams.length) positions.add((await client.next((m) => m.type === 'stream_position' && !positions.has(m.stream as string))).stream as string);
    expect([...positions].sort()).toEqual([...streams].sort());
    expect((await sent()) - before).toBe(streams.length);
  });

  it('computes one checksum per stream and offset for all its subscribers', async () => {
    await publish(gw.url, [order('shared', { order_id: 'a' })]);
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(gw.wsUrl)));
    try {
      for (const c of clients) await c.request('subscribe', { stream: 'orders:shared' });
      await publish(gw.url, [order('shared', { order_id: 'b' })]);
      await Promise.all(clients.map((c) => c.next((m) => m.type === 'order:updated' && m.offset === 2)));
      const before = (await gw.gateway.metrics.checksums.get()).values[0]?.value ?? 0;
      gw.gateway.ctx.positions.tick();
      const positions = await Promise.all(clients.map((c) => c.next((m) => m.type === 'stream_position')));
      expect(new Set(positions.map((p) => p.checksum)).size).toBe(1);
      expect(positions.every((p) => p.offset === 2)).toBe(true);
      const after = (await gw.gateway.metrics.checksums.get()).values[0]?.value ?? 0;
      expect(after - before).toBe(1);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('positions turned off', () => {
  it('with position_interval_ms 0 announces 0 and sends no stream_position', async () => {
    await using gw = await startGateway({ positionIntervalMs: 0 });
    await using client = await TestClient.connect(gw.wsUrl);
    expect(client.messages[0]).toMatchObject({ type: 'connected', position_interval_ms: 0 });
    await client.request('subscribe', { stream: 'orders:off' });
    await publish(gw.url, [order('off')]);
    await client.next((m) => m.type === 'order:updated');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await client.request('ping');
    expect(client.messages.filter((m) => m.type === 'stream_position')).toEqual([]);
  });

  it('sends positions on its own timer when the interval is set', async () => {
    await using gw = await startGateway({ positionIntervalMs: 50 });
    await using client = await TestClient.connect(gw.wsUrl);
    await client.request('subscribe', { stream: 'orders:timer' });
    await publish(gw.url, [order('timer')]);
    const position = await client.next((m) => m.type === 'stream_position' && m.offset === 1, 5000);
    expect(position.checksum).toBe(stateChecksum(gw.gateway.store.get('orders:timer')!.state));
  });
});

describe('conflated subscriptions', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({ positionIntervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it('refuses max_rate on streams that are never conflated with INVALID_PARAMS, and accepts it on market and indicators', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    for (const stream of ['orders:demo', 'portfolio:demo', 'signals:demo', 'alerts:demo', 'state_machines:demo']) {
      const reply = await client.request('subscribe', { stream, params: { max_rate: 10 } });
      expect(reply, stream).toMatchObject({ type: 'error', error: { code: 'INVALID_PARAMS' } });
    }
    for (const max_rate of [0, -1, 'fast']) {
      const reply = await client.request('subscribe', { stream: 'market:BTC-USD', params: { max_rate } });
      expect(reply).toMatchObject({ type: 'error', error: { code: 'INVALID_MESSAGE' } });
    }
    expect(await client.request('subscribe', { stream: 'market:BTC-USD', params: { max_rate: 10 } })).toMatchObject({ type: 'subscribed', max_rate: 10 });
    expect(await client.request('subscribe', { stream: 'indicators:demo', params: { max_rate: 2.5 } })).toMatchObject({ type: 'subscribed', max_rate: 2.5 });
    expect(client.messages.filter((m) => m.type === 'error').length).toBe(8);
  });

  it('sends at most max_rate frames a second, newest tick per symbol, and ends exactly at the server state', async () => {
    await using conflated = await TestClient.connect(gw.wsUrl);
    await using full = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(conflated);
    const stream = 'market:CONF-1';
    const maxRate = 5;
    await conflated.request('subscribe', { stream, params: { max_rate: maxRate } });
    await full.request('subscribe', { stream });
    const started = performance.now();
    let published = 0;
    // 40 publishes of 5 ticks over about a second.
    for (let i = 0; i < 40; i++) {
      await publish(gw.url, Array.from({ length: 5 }, (_, k) => tick('CONF-1', `${100 + i}.${k}`)));
      published += 5;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const head = gw.gateway.store.get(stream)!.head;
    expect(head).toBe(published);
    await conflated.next((m) => (m.type === 'market:tick' && m.offset === head) || (m.type === 'batch_update' && (m.events as Message[]).some((e) => e.offset === head)), 5000);
    const elapsed = (performance.now() - started) / 1000;
    const frames = framesOf(conflated, stream);
    // Every frame carries one event (one symbol), offsets only rise, and the last is the head.
    expect(frames.every((f) => f.length === 1)).toBe(true);
    const offsets = frames.flat();
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(offsets.at(-1)).toBe(head);
    // Each frame at least 1/max_rate after the previous one: no more than max_rate a second (plus the first).
    expect(frames.length).toBeLessThanOrEqual(Math.ceil(elapsed * maxRate) + 1);
    expect(frames.length).toBeLessThan(published / 4);
    // The unconflated subscriber got every offset.
    expect(framesOf(full, stream).flat()).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(stream)!.state).toEqual(gw.gateway.store.get(stream)!.state);
  });

  it('keeps the newest value per indicator (symbol and name), so the conflated state equals the server state', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(client);
    const stream = 'indicators:conf2';
    await client.request('subscribe', { stream, params: { max_rate: 4 } });
    const keys = [['BTC-USD', 'ema_20'], ['BTC-USD', 'rsi_14'], ['ETH-USD', 'ema_20']] as const;
    for (let i = 0; i < 30; i++) {
      const [symbol, name] = keys[i % keys.length]!;
      await publish(gw.url, [indicator('conf2', symbol, name, `${i}.5`)]);
    }
    const head = gw.gateway.store.get(stream)!.head;
    await client.next((m) => (m.stream === stream && m.offset === head) || (m.type === 'batch_update' && (m.events as Message[]).some((e) => e.offset === head)), 5000);
    gw.gateway.ctx.positions.tick();
    await client.next((m) => m.type === 'stream_position' && m.stream === stream);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(stream)!.state).toEqual(gw.gateway.store.get(stream)!.state);
    expect(replica.streams.get(stream)!.verified).toBe(1);
    // Each frame has at most one event per indicator.
    for (const m of client.messages.filter((x) => x.type === 'batch_update')) {
      const events = (m.events as Array<{ stream: string; data: { symbol: string; name: string } }>).filter((e) => e.stream === stream);
      expect(new Set(events.map((e) => `${e.data.symbol}/${e.data.name}`)).size).toBe(events.length);
    }
  });

  it('owes a conflated subscriber its position until the held events go, then sends it at their offset', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(client);
    const stream = 'market:CONF-3';
    await client.request('subscribe', { stream, params: { max_rate: 2 } });
    await publish(gw.url, [tick('CONF-3', '1')]);
    await client.next((m) => m.stream === stream && m.offset === 1);
    // Within the half second before the next frame may go: these wait in the conflation.
    await publish(gw.url, [tick('CONF-3', '2'), tick('CONF-3', '3')]);
    gw.gateway.ctx.positions.tick();
    const position = await client.next((m) => m.type === 'stream_position', 5000);
    expect(position.offset).toBe(3);
    const index = client.messages.indexOf(position);
    const last = client.messages.findIndex((m) => m.stream === stream && m.offset === 3);
    expect(last).toBeGreaterThan(-1);
    expect(last).toBeLessThan(index);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(stream)!.verified).toBe(1);
  });

  it('replays only the newest event per entity when a conflated subscription resumes', async () => {
    const stream = 'indicators:conf4';
    await publish(gw.url, [indicator('conf4', 'BTC-USD', 'ema_20', '1')]);
    await using first = await TestClient.connect(gw.wsUrl);
    const reply = await first.request('subscribe', { stream, params: { max_rate: 10 } });
    first.close();
    const batch = Array.from({ length: 24 }, (_, i) => indicator('conf4', i % 2 ? 'ETH-USD' : 'BTC-USD', i % 3 ? 'ema_20' : 'rsi_14', `${i}`));
    await publish(gw.url, batch);
    await using second = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.streams.set(stream, { epoch: reply.epoch as string, offset: reply.offset as number, state: (reply.snapshot as { state: StreamState }).state, jumps: true, verified: 0 });
    replica.attach(second);
    const resumed = await second.request('subscribe', { stream, since: { epoch: reply.epoch, offset: reply.offset }, params: { max_rate: 10 } });
    expect(resumed).toMatchObject({ recovered: true, offset: 25, max_rate: 10 });
    const events = resumed.events as Array<{ offset: number; data: { symbol: string; name: string } }>;
    // Four entities were written: four events, each the newest of its entity, in offset order.
    expect(events.length).toBe(4);
    expect(events.map((e) => e.offset)).toEqual([...events.map((e) => e.offset)].sort((a, b) => a - b));
    expect(events.at(-1)!.offset).toBe(25);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(stream)!.state).toEqual(gw.gateway.store.get(stream)!.state);
    expect(resumed.checksum).toBe(stateChecksum(gw.gateway.store.get(stream)!.state));
  });
});
