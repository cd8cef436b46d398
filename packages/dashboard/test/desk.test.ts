import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyEvent, initialState } from '@tradesync/protocol';
import type { ChartEvent, EventsReader } from '../src/core/chart-feed.js';
import { Desk } from '../src/core/desk.js';
import type { Notifications, ToastSpec } from '../src/core/notifications.js';
import { ChartSeries, EMA_INDICATOR } from '../src/core/series.js';
import { emptyDebugState } from '../src/core/stores.js';
import { FakeClient, manualFrames, streamEvent, testStores } from './support/fakes.js';

/** The façade: the parts composed, one frame for every store, the recorder only when wanted. */

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const pong = (at = T0) => ({ type: 'pong' as const, sequence_number: 1, timestamp: new Date(at).toISOString() });

function harness(options: { debug?: boolean; probe?: { latencies: number[] }; events?: EventsReader } = {}) {
  const client = new FakeClient();
  const stores = testStores('demo', { debug: options.debug ?? false });
  const frames = manualFrames();
  const chart = new ChartSeries();
  const toasts: ToastSpec[] = [];
  const notifications = {
    always: (t: ToastSpec) => void toasts.push(t),
    onEvent: vi.fn<Notifications['onEvent']>(),
    onPortfolio: vi.fn<Notifications['onPortfolio']>(),
  } satisfies Notifications;
  const desk = new Desk({
    client,
    stores,
    notifications,
    chart,
    requestFrame: frames.request,
    now: () => Date.now(),
    ...(options.probe ? { probe: options.probe } : {}),
    ...(options.events ? { events: options.events } : {}),
  });
  desk.start();
  return { client, stores, frames, chart, toasts, notifications, desk };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the desk', () => {
  it('builds no debug recorder while the debug panel is closed and the probe is off', () => {
    const h = harness();
    expect(h.client.listenerCount('message')).toBe(0);
    vi.advanceTimersByTime(3000);
    expect(h.stores.debug.getState()).toEqual(emptyDebugState());
    // The clock still ticks for the panels' ages.
    expect(h.stores.connection.getState().now).toBe(T0 + 3000);
  });

  it('builds the recorder when the debug panel opens, and drops it (emptying the panel) when it closes', () => {
    const h = harness();
    h.stores.settings.setState((s) => ({ panels: { ...s.panels, debug: true } }));
    expect(h.client.listenerCount('message')).toBe(1);
    h.client.emit('message', pong());
    vi.advanceTimersByTime(1000);
    expect(h.stores.debug.getState().messages.map((m) => m.type)).toEqual(['pong']);
    expect(h.stores.debug.getState().offsets.length).toBeGreaterThan(0);
    h.stores.settings.setState((s) => ({ panels: { ...s.panels, debug: false } }));
    expect(h.client.listenerCount('message')).toBe(0);
    expect(h.stores.debug.getState()).toEqual(emptyDebugState());
  });

  it('with the probe on, records event-to-screen latency from the start, without building message rows', () => {
    const probe = { latencies: [] as number[] };
    const h = harness({ probe });
    expect(h.client.listenerCount('message')).toBe(1);
    h.client.source.get('market:AAPL').event(streamEvent('market:AAPL', 'market:tick', { symbol: 'AAPL', price: '1' }, { timestamp: new Date(T0).toISOString() }));
    h.client.source.get('market:AAPL').sync({ last: null }, 1);
    h.frames.run();
    vi.advanceTimersByTime(40);
    h.desk.committed(h.stores.data.getState().frame);
    expect(probe.latencies).toEqual([40]);
    h.client.emit('message', pong());
    vi.advanceTimersByTime(1000);
    expect(h.stores.debug.getState()).toMatchObject({ messages: [], eventsPerSecond: 1 });
    // Closing a panel that was never open keeps the probe's recorder.
    h.stores.settings.setState((s) => ({ panels: { ...s.panels, debug: true } }));
    h.stores.settings.setState((s) => ({ panels: { ...s.panels, debug: false } }));
    expect(h.client.listenerCount('message')).toBe(1);
  });

  it('writes data and chart in one frame however many events came, and a status change asks for none', () => {
    const h = harness();
    const notified = vi.fn();
    h.chart.subscribe(notified);
    const market = h.client.source.get('market:AAPL');
    for (let i = 0; i < 50; i++) {
      market.event(streamEvent('market:AAPL', 'market:tick', { symbol: 'AAPL', price: String(100 + i) }, { timestamp: new Date(T0 + i * 1000).toISOString() }));
      market.sync({ last: null }, i + 1);
    }
    h.client.status = { ...h.client.status, attempt: 0, lastSequenceNumber: 99 };
    h.client.emit('status', h.client.status, h.client.status);
    expect(h.frames.requested).toBe(1);
    h.frames.run();
    expect(notified).toHaveBeenCalledTimes(1);
    expect(h.stores.data.getState()).toMatchObject({ frame: 1, market: { AAPL: { offset: 50 } } });
    expect(h.chart.price('AAPL').points).toHaveLength(50);
  });

  it('reads a stream’s chart history when it syncs, through the events reader', async () => {
    const readEvents = vi.fn<EventsReader['readEvents']>(() =>
      Promise.resolve({ events: [{ type: 'indicator:updated', offset: 3, timestamp: new Date(T0).toISOString(), data: { symbol: 'AAPL', name: EMA_INDICATOR, value: '5' } } satisfies ChartEvent] }),
    );
    const h = harness({ events: { readEvents } });
    h.client.source.get('indicators:demo').sync(initialState('indicators'), 3);
    h.client.emit('synced', { stream: 'indicators:demo', recovered: false, epoch: 'e1', offset: 3, replayed: 0, via: 'socket' });
    expect(readEvents).toHaveBeenCalledWith('indicators:demo', { after: 0, limit: 5000 });
    await vi.waitFor(() => expect(h.chart.ema('AAPL').points).toHaveLength(1));
  });

  it('says "State synchronized" after a reconnect once every stream has resynced', () => {
    const h = harness();
    h.client.move('reconnecting');
    h.client.move('connected');
    for (const stream of h.client.source.handles.keys()) h.client.emit('synced', { stream, recovered: true, epoch: 'e1', offset: 1, replayed: 0, via: 'socket' });
    expect(h.toasts.map((t) => t.title)).toEqual(['State synchronized']);
  });

  it('on an account switch clears the EMA lines, the rows’ command marks, the banner, and follows the new account', () => {
    const h = harness();
    h.chart.ema('AAPL').push(T0, '1');
    h.stores.ui.setState({ selectedSignal: 'sig-1', commands: { 'sig-1': { commandId: 'c', action: 'execute_signal', target: 'sig-1', phase: 'pending', at: 0 } } });
    h.stores.connection.setState({ syncFailure: { streams: ['orders:demo'], message: 'x' } });
    h.desk.setAccount('demo-2');
    expect(h.chart.ema('AAPL').points).toEqual([]);
    expect(h.stores.ui.getState()).toEqual({ selectedSignal: null, commands: {} });
    expect(h.stores.connection.getState().syncFailure).toBeNull();
    expect(h.desk.account).toBe('demo-2');
    expect(h.client.source.get('orders:demo').unsubscribed).toBe(true);
    expect(h.client.source.handles.has('orders:demo-2')).toBe(true);
  });

  it('sends commands optimistically on the current account and toasts the account’s signal events', () => {
    const h = harness();
    const signals = applyEvent(initialState('signals'), { type: 'signal:new', data: { id: 'sig-1', symbol: 'AAPL', status: 'pending' } });
    h.client.source.get('signals:demo').sync(signals, 1);
    h.desk.executeSignal('sig-1');
    expect(h.client.commands[0]).toMatchObject({ action: 'execute_signal', options: { account: 'demo', optimistic: { stream: 'signals:demo' } } });
    const event = streamEvent('signals:demo', 'signal:executed', { id: 'sig-1' });
    h.client.source.get('signals:demo').event(event);
    expect(h.notifications.onEvent).toHaveBeenCalledWith(event, expect.any(Function));
    const symbolOf = h.notifications.onEvent.mock.calls[0]![1];
    expect(symbolOf?.('sig-1')).toBe('AAPL');
  });

  it('stops listening, ticking and subscribing on dispose', () => {
    const h = harness({ debug: true });
    h.desk.dispose();
    expect(h.client.listenerCount('status')).toBe(0);
    expect(h.client.listenerCount('message')).toBe(0);
    expect([...h.client.source.handles.values()].every((x) => x.unsubscribed)).toBe(true);
    const now = h.stores.connection.getState().now;
    vi.advanceTimersByTime(5000);
    expect(h.stores.connection.getState().now).toBe(now);
  });
});
