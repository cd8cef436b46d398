import { useEffect, useRef } from 'react';
import { createChart, createSeriesMarkers, LineSeries, AreaSeries, type IChartApi, type ISeriesApi, type ISeriesMarkersPluginApi, type SeriesMarker, type Time, type UTCTimestamp } from 'lightweight-charts';
import type { SignalsState } from '@tradesync/protocol';
import { formatPrice } from '../../core/format.js';
import type { Point, PointBuffer } from '../../core/series.js';
import { SYMBOLS } from '../../core/stores.js';
import { useData, useDesk, useSettings } from '../context.js';
import { Panel } from '../Panel.js';

interface Palette {
  text: string;
  grid: string;
  line: string;
  area: string;
  ema: string;
  up: string;
  down: string;
}

function palette(): Palette {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    text: v('--muted', '#8b95a7'),
    grid: v('--grid', '#1c2330'),
    line: v('--accent', '#4c9aff'),
    area: v('--accent-soft', 'rgba(76,154,255,0.12)'),
    ema: v('--ema', '#e0b341'),
    up: v('--up', '#26a269'),
    down: v('--down', '#e5484d'),
  };
}

/** The chart's redraw period: one point per second is drawn, a few redraws a second are plenty. */
const CHART_DRAW_MS = 400;

const toData = (points: readonly Point[]) => points.map((p) => ({ time: p.time as UTCTimestamp, value: p.value }));

/**
 * Keeps a series in step with its buffer: whole data after a reset or a symbol
 * change, then only the points at or after the last one drawn.
 */
class SeriesSync {
  #buffer: PointBuffer | undefined;
  #resets = -1;
  #version = -1;
  #lastTime = 0;
  constructor(
    readonly series: ISeriesApi<'Line'> | ISeriesApi<'Area'>,
    readonly onReload: () => void = () => {},
  ) {}
  sync(buffer: PointBuffer): void {
    // Nothing new for this symbol (ticks of the other symbols): no redraw.
    if (buffer === this.#buffer && buffer.version === this.#version) return;
    this.#version = buffer.version;
    if (buffer !== this.#buffer || buffer.resets !== this.#resets) {
      this.#buffer = buffer;
      this.#resets = buffer.resets;
      this.series.setData(toData(buffer.points));
      this.onReload();
    } else {
      for (const p of buffer.since(this.#lastTime)) this.series.update({ time: p.time as UTCTimestamp, value: p.value });
    }
    this.#lastTime = buffer.points.at(-1)?.time ?? 0;
  }
}

export function ChartPanel() {
  const { chart, settings } = useDesk();
  const symbol = useSettings((s) => s.chartSymbol);
  const theme = useSettings((s) => s.theme);
  const market = useData((d) => d.market[symbol]);
  const signals = useData((d) => d.signals.state);
  const host = useRef<HTMLDivElement>(null);
  const api = useRef<{ chart: IChartApi; markers: ISeriesMarkersPluginApi<Time> } | null>(null);
  /** When the signal markers were last drawn (-Infinity: a new chart, draw at once, even in the page's first second). */
  const markersAt = useRef(-Infinity);

  // Declared before the marker effect so that, in the same commit, the chart exists
  // when the markers are drawn.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const p = palette();
    const c = createChart(el, {
      autoSize: true,
      layout: { background: { color: 'transparent' }, textColor: p.text, fontSize: 11, fontFamily: 'var(--font-num)', attributionLogo: false },
      grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: true },
      crosshair: { mode: 0 },
    });
    const price = c.addSeries(AreaSeries, { lineColor: p.line, topColor: p.area, bottomColor: 'transparent', lineWidth: 2, priceLineVisible: true, title: symbol });
    const ema = c.addSeries(LineSeries, { color: p.ema, lineWidth: 1, priceLineVisible: false, lastValueVisible: true, title: 'EMA 20', crosshairMarkerVisible: false });
    const markers = createSeriesMarkers(price, []);
    api.current = { chart: c, markers };
    const priceSync = new SeriesSync(price, () => c.timeScale().fitContent());
    const emaSync = new SeriesSync(ema);
    const draw = () => {
      priceSync.sync(chart.price(symbol));
      emaSync.sync(chart.ema(symbol));
    };
    draw();
    c.timeScale().fitContent();
    // The marker effect (same deps and more) runs next and draws them at once.
    markersAt.current = -Infinity;
    // Ticks come hundreds of times a second and the chart is a canvas redrawn whole:
    // draw at most every CHART_DRAW_MS (the last change is always drawn, by a trailing
    // timer). The last price next to the tabs still shows every frame.
    let timer: ReturnType<typeof setTimeout> | undefined;
    let drawnAt = 0;
    const schedule = () => {
      if (timer !== undefined) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          drawnAt = performance.now();
          draw();
        },
        Math.max(0, CHART_DRAW_MS - (performance.now() - drawnAt)),
      );
    };
    const off = chart.subscribe(schedule);
    return () => {
      off();
      clearTimeout(timer);
      api.current = null;
      c.remove();
    };
  }, [chart, symbol, theme]);

  // Signal markers: where each signal of this symbol was raised. Redrawn at most once
  // a second (a burst of signals would otherwise redraw the chart every frame). Each
  // change re-arms the timer (so it draws this run's symbol and signals, never a stale
  // one), with the wait counted from the last draw, so a stream of changes still
  // draws once a second; a new chart draws at once.
  useEffect(() => {
    const draw = () => {
      const markers = api.current?.markers;
      if (!markers) return;
      markersAt.current = performance.now();
      markers.setMarkers(markersFor(signals, symbol));
    };
    const wait = 1000 - (performance.now() - markersAt.current);
    if (wait <= 0) {
      draw();
      return;
    }
    const timer = setTimeout(draw, wait);
    return () => clearTimeout(timer);
  }, [chart, signals, symbol, theme]);

  return (
    <Panel
      id="chart"
      title="Price"
      updatedAt={market?.updatedAt ?? null}
      synced={market?.synced ?? false}
      freshness={market}
      tools={
        <div className="tabs" role="tablist" aria-label="Chart symbol">
          {SYMBOLS.map((s) => (
            <button key={s} type="button" role="tab" aria-selected={s === symbol} className={s === symbol ? 'tab active' : 'tab'} onClick={() => settings.update({ chartSymbol: s })}>
              {s}
            </button>
          ))}
          <span className="num last-price" data-testid="chart-last">
            {formatPrice(market?.state.last?.price)}
          </span>
        </div>
      }
    >
      <div className="chart" ref={host} data-testid="chart" aria-label={`${symbol} price with EMA 20 and signal markers`} role="img" />
    </Panel>
  );
}

/** Where each signal of `symbol` was raised: the latest 40, labelled only the last 8 (a burst would bury the line). */
function markersFor(signals: SignalsState, symbol: string): SeriesMarker<UTCTimestamp>[] {
  const p = palette();
  const list: SeriesMarker<UTCTimestamp>[] = [];
  for (const s of Object.values(signals.signals)) {
    if (s.symbol !== symbol) continue;
    const at = Date.parse(typeof s.created_at === 'string' ? s.created_at : '');
    if (Number.isNaN(at)) continue;
    const buy = s.side !== 'sell';
    list.push({
      time: Math.floor(at / 1000) as UTCTimestamp,
      position: buy ? 'belowBar' : 'aboveBar',
      shape: buy ? 'arrowUp' : 'arrowDown',
      color: s.status === 'rejected' || s.status === 'expired' ? p.text : buy ? p.up : p.down,
      text: s.pattern_type,
      size: 1,
    });
  }
  list.sort((a, b) => a.time - b.time);
  return list.slice(-40).map((m, i, all) => (i < all.length - 8 ? { ...m, text: undefined, size: 0.6 } : m));
}
