import { describe, expect, it } from 'vitest';
import { applyEvent, initialState, type StreamEvent } from '@tradesync/protocol';
import { READABLE_RATE, StreamFeed } from '../src/core/stream-feed.js';
import { SYMBOLS } from '../src/core/stores.js';
import { FakeSource, streamEvent, testStores } from './support/fakes.js';

function harness(account = 'demo') {
  const source = new FakeSource();
  const stores = testStores(account);
  let scheduled = 0;
  let now = 1000;
  const events: StreamEvent[] = [];
  const alreadySynced: string[] = [];
  const frames: number[] = [];
  const feed = new StreamFeed({
    source,
    data: stores.data,
    schedule: () => scheduled++,
    now: () => now,
    onEvent: (e) => events.push(e),
    onAlreadySynced: (s) => alreadySynced.push(s),
    onFrame: (f) => frames.push(f),
  });
  return { source, stores, feed, events, alreadySynced, frames, scheduled: () => scheduled, setNow: (t: number) => (now = t) };
}

const ACCOUNT_STREAMS = (account: string) => ['portfolio', 'orders', 'signals', 'state_machines', 'indicators', 'alerts'].map((k) => `${k}:${account}`);

describe('the stream feed', () => {
  it('subscribes every market and the account’s six streams, once each', () => {
    const { source, feed } = harness();
    feed.start();
    expect(source.subscribed).toEqual([...SYMBOLS.map((s) => `market:${s}`), ...ACCOUNT_STREAMS('demo')]);
    expect(feed.streams).toHaveLength(SYMBOLS.length + 6);
  });

  it('writes the data store once per frame however many streams changed, reading each state at the frame', () => {
    const { source, stores, feed, scheduled, frames } = harness();
    feed.start();
    const orders = { orders: { o1: { order_id: 'o1', symbol: 'AAPL' } } } as never;
    source.get('orders:demo').sync(orders, 3);
    source.get('market:BTC-USD').sync({ last: { symbol: 'BTC-USD', price: '1', timestamp: 'x' } }, 9);
    source.get('orders:demo').listener.onChange?.();
    expect(scheduled()).toBe(3);
    let writes = 0;
    stores.data.subscribe(() => writes++);
    expect(feed.flush()).toEqual({ frame: 1 });
    expect(writes).toBe(1);
    expect(frames).toEqual([1]);
    const data = stores.data.getState();
    expect(data.orders).toEqual({ state: orders, updatedAt: 1000, synced: true, offset: 3, stale: false, heardAt: null });
    expect(data.market['BTC-USD']?.offset).toBe(9);
    expect(data.frame).toBe(1);
    // Nothing changed since: no write at all.
    expect(feed.flush()).toBeUndefined();
    expect(writes).toBe(1);
  });

  it('hands the account’s portfolio to the caller when the frame wrote it (heat warnings)', () => {
    const { source, feed } = harness();
    feed.start();
    const portfolio = applyEvent(initialState('portfolio'), { type: 'portfolio:updated', data: { total_heat: '9' } });
    source.get('portfolio:demo').sync(portfolio, 1);
    expect(feed.flush()).toEqual({ frame: 1, portfolio });
  });

  it('passes every live event on as it arrives', () => {
    const { source, feed, events } = harness();
    feed.start();
    const tick = streamEvent('market:AAPL', 'market:tick', { symbol: 'AAPL', price: '1' });
    source.get('market:AAPL').event(tick);
    expect(events).toEqual([tick]);
  });

  it('shows a stream that is already synced at once and says so (no `synced` will come for it)', () => {
    const { source, stores, feed, alreadySynced, scheduled } = harness();
    source.alreadySynced.set('market:AAPL', { state: { last: null }, offset: 42 });
    feed.start();
    expect(alreadySynced).toEqual(['market:AAPL']);
    expect(scheduled()).toBe(1);
    feed.flush();
    expect(stores.data.getState().market.AAPL).toMatchObject({ synced: true, offset: 42 });
  });

  it('on an account switch leaves the old account’s streams, empties its slices and drops their pending changes', () => {
    const { source, stores, feed } = harness();
    feed.start();
    source.get('orders:demo').sync({ orders: { o1: {} } } as never, 5);
    feed.setAccount('demo-2');
    for (const stream of ACCOUNT_STREAMS('demo')) expect(source.get(stream).unsubscribed).toBe(true);
    expect(source.get('market:AAPL').unsubscribed).toBe(false);
    expect(source.subscribed.slice(-6)).toEqual(ACCOUNT_STREAMS('demo-2'));
    expect(stores.data.getState()).toMatchObject({ account: 'demo-2', orders: { synced: false, offset: 0, updatedAt: null } });
    // The old account's change never reaches the new account's slice.
    feed.flush();
    expect(stores.data.getState().orders.synced).toBe(false);
    expect(feed.account).toBe('demo-2');
  });

  it('ignores a switch to the account it already shows', () => {
    const { source, feed } = harness();
    feed.start();
    const count = source.subscribed.length;
    feed.setAccount('demo');
    expect(source.subscribed).toHaveLength(count);
  });

  it('lists every stream’s position for the debug panel', () => {
    const { source, feed } = harness();
    feed.start();
    source.get('alerts:demo').sync({ alerts: [] }, 7);
    source.get('alerts:demo').freshness = { stream: 'alerts:demo', verifiedOffset: 7, verifiedAt: 1234, lastPositionAt: 1234, stale: false };
    expect(feed.offsets()).toContainEqual({ stream: 'alerts:demo', epoch: 'e1', offset: 7, synced: true, verifiedOffset: 7, verifiedAt: 1234, stale: false });
    expect(feed.offsets()).toContainEqual({ stream: 'orders:demo', epoch: null, offset: 0, synced: false, verifiedOffset: null, verifiedAt: null, stale: false });
  });

  it('subscribes market and indicator streams conflated at a readable rate, and nothing else', () => {
    const { source, feed } = harness();
    feed.start();
    for (const [stream, handle] of source.handles) {
      const conflated = stream.startsWith('market:') || stream.startsWith('indicators:');
      expect(handle.params, stream).toEqual(conflated ? { maxRate: READABLE_RATE } : {});
    }
    expect(READABLE_RATE).toBe(10);
  });

  it('marks a stream stale (keeping its state and age) when its positions stop, and fresh again', () => {
    const { source, feed, stores } = harness();
    const data = stores.data;
    feed.start();
    const orders = { orders: { a: { order_id: 'a' } } } as never;
    source.get('orders:demo').sync(orders, 3);
    feed.flush();
    const before = data.getState().orders;
    source.get('orders:demo').freshness = { stream: 'orders:demo', verifiedOffset: 3, verifiedAt: 900, lastPositionAt: 900, stale: true };
    feed.markFreshness('orders:demo');
    feed.flush();
    expect(data.getState().orders).toEqual({ ...before, stale: true, heardAt: 900 });
    source.get('orders:demo').freshness = { stream: 'orders:demo', verifiedOffset: 3, verifiedAt: 1500, lastPositionAt: 1500, stale: false };
    feed.markFreshness('orders:demo');
    feed.flush();
    expect(data.getState().orders).toMatchObject({ stale: false, heardAt: 1500, updatedAt: before.updatedAt });
  });

  it('unsubscribes everything on dispose', () => {
    const { source, feed } = harness();
    feed.start();
    feed.dispose();
    expect([...source.handles.values()].every((h) => h.unsubscribed)).toBe(true);
    expect(feed.streams).toEqual([]);
  });
});
