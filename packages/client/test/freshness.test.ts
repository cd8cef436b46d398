/**
 * The client proves its replicas with the server's `stream_position` messages: over a
 * real gateway and a WebSocket proxy that loses or alters chosen messages, a lost live
 * frame is noticed at the next position and resumed, a corrupted one fails the checksum
 * and is replaced by a snapshot, and a stream whose positions stop coming is flagged
 * stale; nothing is flagged on a clean path. Conflated subscriptions end exactly at the
 * server's state.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { POSITION_QUIET_EVERY } from '@tradesync/protocol';
import { order, publish, startGateway, tick } from '@tradesync/testing';
import { FrameProxy } from '@tradesync/testing/frame-proxy';
import { Freshness, judgePosition } from '../src/freshness.js';
import { TradeSyncClient, type ClientOptions, type DivergedInfo, type LiveEvent, type Logger, type LostInfo, type StreamFreshness } from '../src/index.js';

const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const clients: TradeSyncClient[] = [];

function makeClient(options: ClientOptions): TradeSyncClient {
  const client = new TradeSyncClient({ WebSocket: WebSocket as never, logger: quiet, backoff: { delaysMs: [50], jitter: 0 }, ...options });
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

/** What the client said about its replicas. */
function watch(client: TradeSyncClient) {
  const lost: LostInfo[] = [];
  const diverged: DivergedInfo[] = [];
  const freshness: StreamFreshness[] = [];
  client.on('lost', (info) => lost.push(info));
  client.on('diverged', (info) => diverged.push(info));
  client.on('freshness', (info) => freshness.push(info));
  return { lost, diverged, freshness };
}

const base = (wsUrl: string) => wsUrl.replace(/\/ws$/, '');
const isEventOf = (text: string, stream: string, offset: number) => text.includes(`"stream":"${stream}"`) && text.includes(`"offset":${offset},`) && !text.includes('"type":"stream_position"') && !text.includes('"type":"subscribed"');

describe('judgePosition', () => {
  const replica = (offset: number, checksum = 'aaaaaaaa', holding = false, jumps = false) => ({ epoch: 'e1', offset, holding, jumps, checksum: () => checksum });

  it('verifies a matching checksum at the same offset, and tells behind, diverged and another epoch apart', () => {
    expect(judgePosition(replica(5), { epoch: 'e1', offset: 5, checksum: 'aaaaaaaa' })).toBe('verified');
    expect(judgePosition(replica(5), { epoch: 'e1', offset: 5, checksum: 'bbbbbbbb' })).toBe('diverged');
    expect(judgePosition(replica(4), { epoch: 'e1', offset: 5, checksum: 'aaaaaaaa' })).toBe('behind');
    expect(judgePosition(replica(5), { epoch: 'e2', offset: 5, checksum: 'aaaaaaaa' })).toBe('other_epoch');
  });

  it('judges nothing while the replica syncs or once it is past the position', () => {
    expect(judgePosition(replica(3, 'x', true), { epoch: 'e1', offset: 5, checksum: 'aaaaaaaa' })).toBe('skip');
    expect(judgePosition(replica(6), { epoch: 'e1', offset: 5, checksum: 'aaaaaaaa' })).toBe('skip');
    expect(judgePosition({ epoch: undefined, offset: 0, holding: false, jumps: false, checksum: () => '' }, { epoch: 'e1', offset: 0, checksum: 'aaaaaaaa' })).toBe('skip');
  });

  it('verifies a replica behind the position when its offsets jump and its state matches there', () => {
    expect(judgePosition(replica(4, 'aaaaaaaa', false, true), { epoch: 'e1', offset: 9, checksum: 'aaaaaaaa' })).toBe('verified');
    expect(judgePosition(replica(4, 'bbbbbbbb', false, true), { epoch: 'e1', offset: 9, checksum: 'aaaaaaaa' })).toBe('behind');
  });
});

describe('Freshness.staleAt', () => {
  it('is two intervals after an uncovered event, or two quiet periods after the last position, counted from going live', () => {
    const f = new Freshness();
    expect(f.staleAt(100)).toBeUndefined();
    f.liveSince = 1000;
    expect(f.staleAt(100)).toBe(1000 + 2 * POSITION_QUIET_EVERY * 100);
    f.lastPositionAt = 1500;
    expect(f.staleAt(100)).toBe(1500 + 2 * POSITION_QUIET_EVERY * 100);
    f.unverifiedSince = 1600;
    expect(f.staleAt(100)).toBe(1800);
  });
});

describe('freshness against a real gateway', () => {
  const INTERVAL = 100;

  it('verifies every stream on a clean path and flags nothing', async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    const client = makeClient({ url: gw.wsUrl });
    const seen = watch(client);
    const handle = client.subscribe('orders:clean');
    client.subscribe('market:CLEAN-1');
    for (let i = 0; i < 10; i++) {
      await publish(gw.url, [order('clean', { order_id: `o${i % 3}` }), tick('CLEAN-1', `${i}`)]);
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await vi.waitFor(() => expect(client.freshness('orders:clean')?.verifiedOffset).toBe(10), { timeout: 5000 });
    await vi.waitFor(() => expect(client.freshness('market:CLEAN-1')?.verifiedOffset).toBe(10), { timeout: 5000 });
    expect(handle.state).toEqual(gw.gateway.store.get('orders:clean')!.state);
    expect(seen).toEqual({ lost: [], diverged: [], freshness: [] });
    expect(client.freshnessCounts).toMatchObject({ behind: 0, diverged: 0, stale: 0 });
    expect(client.freshnessCounts.verified).toBeGreaterThan(0);
  });

  it('notices a lost live frame at the next position, resumes, and ends at the server state', async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    await using proxy = await FrameProxy.start(base(gw.wsUrl));
    // The last event is lost: no later event shows the hole, only the position can.
    proxy.filter = (text) => (isEventOf(text, 'orders:lossy', 4) ? { action: 'drop' } : { action: 'pass' });
    const client = makeClient({ url: `${proxy.url}/ws` });
    const seen = watch(client);
    const handle = client.subscribe('orders:lossy');
    await vi.waitFor(() => expect(handle.synced).toBe(true));
    for (let i = 1; i <= 4; i++) {
      await publish(gw.url, [order('lossy', { order_id: `o${i}` })]);
      // One event per frame, so the proxy can lose exactly one.
      await vi.waitFor(() => expect(proxy.frames[0]!.some((f) => isEventOf(f.text, 'orders:lossy', i))).toBe(true));
    }
    await vi.waitFor(() => expect(seen.lost.length).toBe(1), { timeout: 5000 });
    expect(seen.lost[0]).toMatchObject({ stream: 'orders:lossy', have: 3, position: 4 });
    await vi.waitFor(() => expect(handle.state).toEqual(gw.gateway.store.get('orders:lossy')!.state), { timeout: 5000 });
    expect(seen.diverged).toEqual([]);
  });

  it('fails the checksum of a replica a corrupted frame changed, takes a snapshot, and ends at the server state', async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    await using proxy = await FrameProxy.start(base(gw.wsUrl));
    // Same offsets, another price: only the checksum can tell.
    proxy.filter = (text) => (isEventOf(text, 'orders:bent', 2) ? { action: 'replace', text: text.replace('"price":"100"', '"price":"999"') } : { action: 'pass' });
    const client = makeClient({ url: `${proxy.url}/ws` });
    const seen = watch(client);
    const handle = client.subscribe('orders:bent');
    await vi.waitFor(() => expect(handle.synced).toBe(true));
    await publish(gw.url, [order('bent', { order_id: 'a', price: '100' })]);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(1));
    await publish(gw.url, [order('bent', { order_id: 'b', price: '100' })]);
    await vi.waitFor(() => expect(seen.diverged.length).toBe(1), { timeout: 5000 });
    expect(seen.diverged[0]).toMatchObject({ stream: 'orders:bent', offset: 2, source: 'position' });
    expect(seen.diverged[0]!.expected).not.toBe(seen.diverged[0]!.actual);
    await vi.waitFor(() => expect(handle.state).toEqual(gw.gateway.store.get('orders:bent')!.state), { timeout: 5000 });
    expect(client.freshnessCounts.diverged).toBe(1);
    expect(seen.lost).toEqual([]);
  });

  it('flags a stream stale when its positions stop coming while events do, and fresh again when they return', async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    await using proxy = await FrameProxy.start(base(gw.wsUrl));
    let dropPositions = false;
    proxy.filter = (text) => (dropPositions && text.includes('"type":"stream_position"') ? { action: 'drop' } : { action: 'pass' });
    const client = makeClient({ url: `${proxy.url}/ws` });
    const seen = watch(client);
    const handle = client.subscribe('orders:wedged');
    await vi.waitFor(() => expect(handle.synced).toBe(true));
    dropPositions = true;
    const publishing = setInterval(() => void publish(gw.url, [order('wedged')]), 40);
    try {
      await vi.waitFor(() => expect(client.freshness('orders:wedged')?.stale).toBe(true), { timeout: 5000 });
      expect(seen.freshness[0]).toMatchObject({ stream: 'orders:wedged', stale: true });
      dropPositions = false;
      await vi.waitFor(() => expect(client.freshness('orders:wedged')?.stale).toBe(false), { timeout: 5000 });
    } finally {
      clearInterval(publishing);
    }
    expect(seen.freshness.map((f) => f.stale)).toEqual([true, false]);
    expect(client.freshnessCounts.stale).toBe(1);
  });

  it('subscribes conflated with maxRate: offsets jump, the state ends equal to the server, verified', async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    const client = makeClient({ url: gw.wsUrl });
    const offsets: number[] = [];
    const handle = client.subscribe('market:FAST-1', { onEvent: (e: LiveEvent) => offsets.push(e.offset) }, { maxRate: 5 });
    await vi.waitFor(() => expect(handle.synced).toBe(true));
    for (let i = 0; i < 20; i++) {
      await publish(gw.url, Array.from({ length: 5 }, (_, k) => tick('FAST-1', `${i}.${k}`)));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await vi.waitFor(() => expect(client.freshness('market:FAST-1')?.verifiedOffset).toBe(100), { timeout: 5000 });
    expect(handle.state).toEqual(gw.gateway.store.get('market:FAST-1')!.state);
    expect(offsets.length).toBeLessThan(50);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(client.streams().find((s) => s.stream === 'market:FAST-1')?.maxRate).toBe(5);
  });

  it("proves a session-scoped replica at the stream's head though other sessions' events were not sent to it", async () => {
    await using gw = await startGateway({ positionIntervalMs: INTERVAL });
    const client = makeClient({ url: gw.wsUrl });
    const seen = watch(client);
    const stream = 'state_machines:scoped';
    const added = (id: string, session: string) => ({ stream, type: 'instance_added', data: { instance_id: id, session_id: session, strategy: 'wyckoff', symbol: 'BTC-USD', state: 'MONITORING' } });
    const handle = client.subscribe(stream, {}, { sessionId: 'A' });
    await vi.waitFor(() => expect(handle.synced).toBe(true));
    await publish(gw.url, [added('a1', 'A'), added('b1', 'B'), added('b2', 'B')]);
    // The last three events are B's: only the position can tell the replica it stands at 3.
    await vi.waitFor(() => expect(client.freshness(stream)?.verifiedOffset).toBe(3), { timeout: 5000 });
    expect(handle.position?.offset).toBe(3);
    expect(Object.keys((handle.state as { instances: object }).instances)).toEqual(['a1']);
    expect(seen).toEqual({ lost: [], diverged: [], freshness: [] });
  });

  it('refuses maxRate for a stream that is never conflated, before sending anything', () => {
    const client = makeClient({ url: 'ws://127.0.0.1:9/ws', autoConnect: false });
    expect(() => client.subscribe('orders:demo', {}, { maxRate: 10 })).toThrow(/never conflated/);
    expect(() => client.subscribe('market:BTC-USD', {}, { maxRate: 0 })).toThrow(/positive/);
    expect(() => client.subscribe('market:BTC-USD', {}, { maxRate: 2000 })).toThrow(/at most 1000/);
    expect(() => client.subscribe('market:BTC-USD', {}, { maxRate: Number.POSITIVE_INFINITY })).toThrow(/at most 1000/);
  });

  it('refuses a second listener of a stream for another session: the one subscription has one scope', () => {
    const client = makeClient({ url: 'ws://127.0.0.1:9/ws', autoConnect: false });
    client.subscribe('state_machines:demo', {}, { sessionId: 'A' });
    expect(() => client.subscribe('state_machines:demo', {}, { sessionId: 'B' })).toThrow(/session "A"/);
    expect(() => client.subscribe('state_machines:demo', {})).toThrow(/session "A"/);
    expect(() => client.subscribe('state_machines:demo', {}, { sessionId: 'A' })).not.toThrow();
  });
});
