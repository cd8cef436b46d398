/**
 * The bench's plot: p99 latency against the event rate, one line per system, for the
 * fan-out scenario. A Vega-Lite spec compiled and rendered to SVG by Vega in Node (no
 * browser, no canvas), then rasterized to PNG by resvg, so docs/BENCHMARKS.md can show it.
 */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface PlotPoint {
  readonly system: string;
  readonly rate: number;
  /** p99 latency, ms. */
  readonly p99: number;
}

export async function plotLatency(points: readonly PlotPoint[], path: string, title: string): Promise<void> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 320,
    background: 'white',
    data: { values: points.map((p) => ({ ...p })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'rate', type: 'quantitative', title: 'events/s published (1,000 clients each)', scale: { type: 'log', nice: false }, axis: { values: [...new Set(points.map((p) => p.rate))] } },
      y: { field: 'p99', type: 'quantitative', title: 'p99 latency, ms (log scale)', scale: { type: 'log' } },
      color: { field: 'system', type: 'nominal', title: 'system' },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true } }).render().asPng();
  writeFileSync(path, png);
}
