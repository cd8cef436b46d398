import { describe, expect, it, vi } from 'vitest';
import { ChartFeed, BACKFILL_LIMIT, type ChartEvent, type EventsReader } from '../src/core/chart-feed.js';
import { ChartSeries, EMA_INDICATOR } from '../src/core/series.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const tick = (offset: number, price: string, sec = offset): ChartEvent => ({ type: 'market:tick', offset, timestamp: new Date(T0 + sec * 1000).toISOString(), data: { symbol: 'AAPL', price } });
const ema = (offset: number, value: string, symbol = 'AAPL'): ChartEvent => ({
  type: 'indicator:updated',
  offset,
  timestamp: new Date(T0 + offset * 1000).toISOString(),
  data: { symbol, name: EMA_INDICATOR, value },
});

/** An events reader whose answers the test releases by hand. */
function reader() {
  const calls: Array<{ stream: string; options: { after: number; limit?: number }; resolve: (events: ChartEvent[]) => void; reject: (e: Error) => void }> = [];
  const events: EventsReader = {
    readEvents: (stream, options) =>
      new Promise((resolve, reject) => {
        calls.push({ stream, options, resolve: (list) => resolve({ events: list }), reject });
      }),
  };
  return { events, calls };
}

function harness(withReader = true) {
  const chart = new ChartSeries();
  const r = reader();
  let scheduled = 0;
  const warn = vi.fn();
  const feed = new ChartFeed({ chart, schedule: () => scheduled++, ...(withReader ? { events: r.events } : {}), logger: { warn } });
  return { chart, feed, calls: r.calls, warn, scheduled: () => scheduled };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

/** What the SDK's `HistoryTrimmedError` looks like to the chart: its name and where history starts. */
function trimmed(firstOffset: number): Error {
  const error = Object.assign(new Error('HTTP 410: HISTORY_TRIMMED'), { firstOffset });
  error.name = 'HistoryTrimmedError';
  return error;
}

describe('the chart feed', () => {
  it('draws live price ticks and EMA values, and asks for a frame for each', () => {
    const h = harness();
    expect(h.feed.onEvent(tick(1, '189.50'))).toBe(true);
    expect(h.feed.onEvent(ema(2, '189.10'))).toBe(true);
    expect(h.chart.price('AAPL').points).toEqual([{ time: T0 / 1000 + 1, value: 189.5 }]);
    expect(h.chart.ema('AAPL').points).toEqual([{ time: T0 / 1000 + 2, value: 189.1 }]);
    expect(h.scheduled()).toBe(2);
  });

  it('lets other events pass (they are not chart points)', () => {
    const h = harness();
    expect(h.feed.onEvent({ type: 'indicator:updated', offset: 1, timestamp: new Date(T0).toISOString(), data: { symbol: 'AAPL', name: 'rsi_14', value: '50' } })).toBe(false);
    expect(h.feed.onEvent({ type: 'signal:new', offset: 1, timestamp: new Date(T0).toISOString(), data: { id: 's' } })).toBe(false);
    expect(h.scheduled()).toBe(0);
  });

  it('takes the producer’s own time for a point when the event gives one', () => {
    const h = harness();
    h.feed.onEvent({ ...tick(1, '1'), data: { symbol: 'AAPL', price: '1', timestamp: new Date(T0 + 60_000).toISOString() } });
    expect(h.chart.price('AAPL').points[0]?.time).toBe(T0 / 1000 + 60);
  });

  it('reads a market’s recent history once, through the events reader, up to where the replica stands', async () => {
    const h = harness();
    h.feed.backfill('market:AAPL', 2000);
    h.feed.backfill('market:AAPL', 2001);
    expect(h.calls.map((c) => [c.stream, c.options])).toEqual([['market:AAPL', { after: 2000 - BACKFILL_LIMIT.market, limit: BACKFILL_LIMIT.market }]]);
    // An event past the replica's offset is a live one the line already has: it stops the backfill.
    h.calls[0]!.resolve([tick(501, '10'), tick(502, '11'), tick(2001, '99')]);
    await settle();
    expect(h.chart.price('AAPL').points.map((p) => p.value)).toEqual([10, 11]);
    expect(h.scheduled()).toBe(1);
  });

  it('starts from offset 0 for a short stream, and reads the account’s indicators too', () => {
    const h = harness();
    h.feed.backfill('indicators:demo', 40);
    expect(h.calls[0]?.options).toEqual({ after: 0, limit: BACKFILL_LIMIT.indicators });
  });

  it('reads nothing for streams without lines, or without a reader', () => {
    const h = harness();
    h.feed.backfill('orders:demo', 10);
    h.feed.backfill('signals:demo', 10);
    expect(h.calls).toEqual([]);
    const none = harness(false);
    expect(() => none.feed.backfill('market:AAPL', 10)).not.toThrow();
  });

  it('drops a history that arrives after the page left its account, and reads it again on coming back', async () => {
    const h = harness();
    h.feed.backfill('indicators:demo', 10);
    h.feed.forgetAccount('demo');
    h.calls[0]!.resolve([ema(5, '1')]);
    await settle();
    expect(h.chart.ema('AAPL').points).toEqual([]);
    h.feed.backfill('indicators:demo', 12);
    expect(h.calls).toHaveLength(2);
    h.calls[1]!.resolve([ema(6, '2')]);
    await settle();
    expect(h.chart.ema('AAPL').points.map((p) => p.value)).toEqual([2]);
  });

  it('keeps market history across an account switch (prices are public)', async () => {
    const h = harness();
    h.feed.backfill('market:AAPL', 10);
    h.feed.forgetAccount('demo');
    h.calls[0]!.resolve([tick(3, '7')]);
    await settle();
    expect(h.chart.price('AAPL').points.map((p) => p.value)).toEqual([7]);
    h.feed.backfill('market:AAPL', 11);
    expect(h.calls).toHaveLength(1);
  });

  it('clears the EMA lines when the account goes', () => {
    const h = harness();
    h.feed.onEvent(ema(1, '5'));
    const listener = vi.fn();
    h.chart.subscribe(listener);
    h.feed.forgetAccount('demo');
    expect(h.chart.ema('AAPL').points).toEqual([]);
    expect(listener).toHaveBeenCalled();
  });

  it('reads what is still kept when older history was trimmed, once, and logs nothing for it', async () => {
    const h = harness();
    h.feed.backfill('market:AAPL', 5000);
    expect(h.calls[0]?.options.after).toBe(5000 - BACKFILL_LIMIT.market);
    h.calls[0]!.reject(trimmed(4200));
    await settle();
    expect(h.calls[1]?.options).toEqual({ after: 4199, limit: BACKFILL_LIMIT.market });
    h.calls[1]!.reject(trimmed(4300));
    await settle();
    expect(h.calls).toHaveLength(2);
    expect(h.warn).not.toHaveBeenCalled();
  });

  it('does not retry when nothing before the replica’s offset is kept', async () => {
    const h = harness();
    h.feed.backfill('market:AAPL', 10);
    h.calls[0]!.reject(trimmed(11));
    await settle();
    expect(h.calls).toHaveLength(1);
    expect(h.warn).not.toHaveBeenCalled();
  });

  it('says why history is missing when it cannot be read, and the live line goes on', async () => {
    const h = harness();
    h.feed.backfill('market:AAPL', 10);
    h.calls[0]!.reject(new Error('HTTP 503'));
    await settle();
    expect(h.warn).toHaveBeenCalledWith('chart history could not be read', { stream: 'market:AAPL', error: 'HTTP 503' });
    expect(h.feed.onEvent(tick(11, '8'))).toBe(true);
  });
});
