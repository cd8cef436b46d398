/**
 * The dashboard under load: a real gateway serving the built dashboard, a producer
 * publishing ~1,000 events/s over HTTP (market ticks, signals, orders), and Debian's
 * Chromium showing the desk. Measures long tasks (PerformanceObserver 'longtask'),
 * event-to-screen latency (the event's server timestamp vs the frame that shows it,
 * from the page's `?probe` hook) and the JS heap (CDP, after a GC) at start and end.
 *
 *   node --conditions=@tradesync/source --import tsx bench/dashboard-load.ts [--duration 60] [--rate 1000] [--tick 10] [--busy] [--nice 10] [--profile] [--trace] [--hide orders,signals]
 *
 * `--tick` is how often the producer posts (each post reaches the page as one frame of
 * events). `--busy` runs one more process spinning on a core for the whole run, as
 * another busy program on the trader's machine would. `--nice N` lowers this process's
 * priority (the gateway and the producer; Chromium is started first and keeps its own),
 * which stands for a gateway on another machine: the browser gets the cores first.
 * `--hide` closes panels (the page's saved View settings) to see what each one costs.
 * `--trace` records a Chromium trace of the run and breaks every long task down into
 * what ran inside it (script, style, layout, paint, GC); tracing itself costs frames.
 */
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import type { CDPSession, Page } from 'playwright-core';
import { ARTIFACTS, deskEvents, launchBrowser, marketHistory, publishAll, startDeskGateway, SYMBOL_PRICES } from '../e2e/support/desk.js';

const { values } = parseArgs({ options: { duration: { type: 'string', default: '60' }, rate: { type: 'string', default: '1000' }, profile: { type: 'boolean', default: false }, trace: { type: 'boolean', default: false }, tick: { type: 'string', default: '10' }, busy: { type: 'boolean', default: false }, nice: { type: 'string', default: '0' }, hide: { type: 'string', default: '' } } });
const durationS = Number(values.duration);
const rate = Number(values.rate);
if (!(durationS > 0) || !(rate > 0)) throw new Error('--duration and --rate must be positive numbers');

// The producer posts a batch every `--tick` ms (the gateway sends each batch as one frame).
const TICK_MS = Number(values.tick);
if (!(TICK_MS >= 1)) throw new Error('--tick must be at least 1 ms');
const perBatch = Math.round((rate * TICK_MS) / 1000);
const symbols = Object.keys(SYMBOL_PRICES);

function batch(n: number, seq: { i: number }): unknown[] {
  const out: unknown[] = [];
  const now = new Date().toISOString();
  for (let k = 0; k < n; k++) {
    const i = seq.i++;
    const r = i % 20;
    const symbol = symbols[i % symbols.length]!;
    const price = (SYMBOL_PRICES[symbol]! * (1 + Math.sin(i / 500) * 0.01)).toFixed(2);
    if (r < 14) out.push({ stream: `market:${symbol}`, type: 'market:tick', data: { symbol, price, timestamp: now } });
    else if (r < 17)
      out.push({
        stream: 'signals:demo',
        type: 'signal:new',
        data: { id: `sig-load-${i}`, symbol, pattern_type: 'SOS', confidence_score: 50 + (i % 50), status: 'pending', session_id: 's1', created_at: now, side: 'buy', entry_price: price },
      });
    else
      out.push({
        stream: 'orders:demo',
        type: 'order:updated',
        data: { order_id: `ord-load-${i % 150}`, symbol, side: i % 2 ? 'buy' : 'sell', order_type: 'limit', quantity: '1.5', price, filled_quantity: '0', status: 'open', session_id: 's1', created_at: now },
      });
  }
  return out;
}

async function heapMb(cdp: CDPSession): Promise<number> {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const used = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
  return used / 1024 / 1024;
}

/** Where the page's main thread went (CDP Performance.getMetrics: cumulative since page load). */
const MAIN_THREAD_METRICS = ['TaskDuration', 'ScriptDuration', 'RecalcStyleDuration', 'LayoutDuration', 'RecalcStyleCount', 'LayoutCount'] as const;
async function mainThreadMetrics(cdp: CDPSession): Promise<Record<string, number>> {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
}

/** The parts of a Long Animation Frame entry the bench reads (not yet in TypeScript's DOM types). */
interface LoafEntry {
  readonly blockingDuration: number;
  readonly renderStart: number;
  readonly styleAndLayoutStart: number;
  readonly scripts: ReadonlyArray<{ readonly invoker: string; readonly invokerType: string; readonly duration: number }>;
}
interface LongFrame {
  duration: number;
  blocking: number;
  /** From the start of rendering (rAF callbacks, style, layout, paint) to the frame's end. */
  render: number;
  /** From the start of style and layout (paint included) to the frame's end. */
  styleLayout: number;
  scripts: string[];
}

const pct = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

async function main(): Promise<void> {
  const gw = await startDeskGateway();
  const browser = await launchBrowser();
  if (Number(values.nice) > 0) setPriority(Number(values.nice));
  try {
    await publishAll(gw.url, [...marketHistory('demo', 120), ...deskEvents('demo')]);
    const page: Page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.addInitScript(() => {
      const w = window as unknown as { __longtasks: number[]; __longframes: LongFrame[] };
      w.__longtasks = [];
      w.__longframes = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longtasks.push(e.duration);
      }).observe({ type: 'longtask', buffered: true });
      // Long animation frames say what a long frame was made of (scripts, then style,
      // layout and paint); only the ones over 50 ms are kept.
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          const e = entry as PerformanceEntry & LoafEntry;
          if (e.duration <= 50) continue;
          const end = e.startTime + e.duration;
          w.__longframes.push({
            duration: e.duration,
            blocking: e.blockingDuration,
            render: e.renderStart > 0 ? end - e.renderStart : 0,
            styleLayout: e.styleAndLayoutStart > 0 ? end - e.styleAndLayoutStart : 0,
            scripts: e.scripts.map((sc) => `${sc.invoker || sc.invokerType} ${sc.duration.toFixed(0)}`),
          });
        }
      }).observe({ type: 'long-animation-frame', buffered: true });
    });
    const hidden = values.hide.split(',').filter(Boolean);
    if (hidden.length > 0) {
      await page.addInitScript((ids) => {
        localStorage.setItem('tradesync.settings', JSON.stringify({ panels: Object.fromEntries(ids.map((id) => [id, false])) }));
      }, hidden);
    }
    await page.goto(`${gw.url}/?probe=1`);
    await page.locator('.conn-text', { hasText: 'Live' }).waitFor({ timeout: 20_000 });
    await page.waitForTimeout(2000);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    // Start from a clean slate: the page load's own long tasks are not the load's.
    await page.evaluate(() => {
      (window as unknown as { __longtasks: number[] }).__longtasks.length = 0;
      (window as unknown as { __longframes: unknown[] }).__longframes.length = 0;
      window.__tradesyncProbe!.latencies.length = 0;
    });
    const heapStart = await heapMb(cdp);
    const metricsStart = await mainThreadMetrics(cdp);
    if (values.profile) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.start');
    }
    if (values.trace) await browser.startTracing(page, { categories: TRACE_CATEGORIES });

    const seq = { i: 0 };
    let published = 0;
    let failures = 0;
    const started = Date.now();
    const deadline = started + durationS * 1000;
    let next = started;
    // Every 2 s: the live heap (its lowest value per minute is the floor a leak would
    // raise) and the page's latencies so far (drained, so the page never caps them).
    const heapFloor: number[] = [];
    const latencies: number[] = [];
    const drain = async () => latencies.push(...(await page.evaluate(() => window.__tradesyncProbe!.latencies.splice(0))));
    const sample = async () => {
      const { metrics } = await cdp.send('Performance.getMetrics');
      const heap = (metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0) / 1024 / 1024;
      const minute = Math.floor((Date.now() - started) / 60_000);
      heapFloor[minute] = Math.min(heapFloor[minute] ?? Infinity, heap);
      await drain();
    };
    const sampler = setInterval(() => void sample().catch(() => {}), 2000);
    // Bounded by the run: killed below, and by its own timeout if this process dies first.
    const busy = values.busy ? spawn(process.execPath, ['-e', `const end = Date.now() + ${durationS * 1000 + 5000}; while (Date.now() < end);`], { stdio: 'ignore' }) : undefined;
    while (Date.now() < deadline) {
      const events = batch(perBatch, seq);
      try {
        // Keep-alive fetch: one producer connection, as a real engine would hold.
        const res = await fetch(`${gw.url}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(String(res.status));
        published += events.length;
      } catch {
        failures++;
      }
      next += TICK_MS;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    clearInterval(sampler);
    busy?.kill();
    const elapsed = (Date.now() - started) / 1000;
    const metricsEnd = await mainThreadMetrics(cdp);
    if (values.profile) printProfile((await cdp.send('Profiler.stop')).profile);
    const trace = values.trace ? await browser.stopTracing() : undefined;
    await page.waitForTimeout(1000);
    const heapEnd = await heapMb(cdp);
    await drain();
    const { longtasks, longframes } = await page.evaluate(() => {
      const w = window as unknown as { __longtasks: number[]; __longframes: LongFrame[] };
      return { longtasks: w.__longtasks.slice(), longframes: w.__longframes.slice() };
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}/bench-dashboard-load.png` });
    const sorted = latencies.sort((a, b) => a - b);
    const rows: Array<[string, string, string]> = [
      ['duration', `${elapsed.toFixed(1)} s`, ''],
      ['events published', `${published} (${(published / elapsed).toFixed(0)}/s)`, `target ${rate}/s`],
      ['publish failures', String(failures), ''],
      ['events measured on screen', String(sorted.length), ''],
      ['event→screen p50', `${pct(sorted, 50).toFixed(0)} ms`, '< 100 ms'],
      ['event→screen p95', `${pct(sorted, 95).toFixed(0)} ms`, ''],
      ['event→screen p99', `${pct(sorted, 99).toFixed(0)} ms`, ''],
      ['event→screen max', `${(sorted.at(-1) ?? NaN).toFixed(0)} ms`, ''],
      // The browser reports only tasks over 50 ms.
      ['long tasks (> 50 ms)', `${longtasks.length}`, '0'],
      ['longest task', `${Math.max(0, ...longtasks).toFixed(0)} ms`, '≤ 50 ms'],
      ['JS heap start (after GC)', `${heapStart.toFixed(1)} MB`, ''],
      ['JS heap end (after GC)', `${heapEnd.toFixed(1)} MB`, 'flat'],
      ['JS heap floor per minute', heapFloor.map((mb) => `${mb.toFixed(1)}`).join(' → ') + ' MB', 'flat'],
      ...MAIN_THREAD_METRICS.map((name): [string, string, string] => {
        const d = (metricsEnd[name] ?? 0) - (metricsStart[name] ?? 0);
        return [`main thread ${name}`, name.endsWith('Duration') ? `${(d * 1000).toFixed(0)} ms (${((d * 100) / elapsed).toFixed(0)}%)` : String(d), ''];
      }),
    ];
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    console.log(`\ndashboard under load (${rate} events/s in posts every ${TICK_MS} ms for ${durationS} s${values.busy ? ', one more core-bound process running' : ''}${Number(values.nice) > 0 ? `, gateway and producer at nice ${values.nice}` : ''})\n`);
    for (const [k, v, t] of rows) console.log(`${k.padEnd(w0)}  ${v.padEnd(w1)}  ${t}`);
    if (longframes.length > 0) {
      console.log('\nanimation frames over 50 ms (duration, blocking: rendering, of it style, layout and paint; scripts):');
      for (const f of longframes) {
        console.log(`  ${f.duration.toFixed(0)} ms, blocking ${f.blocking.toFixed(0)}: rendering ${f.render.toFixed(0)}, style+layout+paint ${f.styleLayout.toFixed(0)}; ${f.scripts.join(', ') || 'no script'}`);
      }
    }
    if (trace) {
      // Last, so that a trace too large to read costs only its own breakdown.
      try {
        printLongTasks(JSON.parse(trace.toString('utf8')) as { traceEvents: TraceEvent[] });
      } catch (err) {
        console.log(`\ntrace: not read (${(err as Error).message})`);
      }
    }
  } finally {
    await browser.close();
    await gw[Symbol.asyncDispose]();
  }
}

const TRACE_CATEGORIES = ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'v8.execute', 'blink.user_timing', 'disabled-by-default-v8.gc'];

interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  dur?: number;
  /** Thread time: the part of `dur` the thread was on a CPU. */
  tdur?: number;
  pid: number;
  tid: number;
  args?: { name?: string; data?: { functionName?: string; url?: string; type?: string } };
}

/**
 * `--trace`: every main-thread task over 50 ms, with the self time of what ran inside it
 * (trace events nest by time on one thread; each event's self time is its duration less
 * its children's).
 */
function printLongTasks(trace: { traceEvents: TraceEvent[] }): void {
  const events = trace.traceEvents;
  // The trace covers the whole browser, which may run more than one renderer (a spare
  // one among them): the page's main thread is the renderer main thread that ran most.
  const isTask = (e: TraceEvent) => e.ph === 'X' && e.dur !== undefined && (e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask');
  const mains = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  const busy = new Map<string, number>();
  for (const e of events) {
    const key = `${e.pid}:${e.tid}`;
    if (mains.has(key) && isTask(e)) busy.set(key, (busy.get(key) ?? 0) + e.dur!);
  }
  const main = [...busy.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (!main) return console.log('\ntrace: no renderer main thread found');
  const onMain = events.filter((e) => `${e.pid}:${e.tid}` === main && e.ph === 'X' && e.dur !== undefined).sort((a, b) => a.ts - b.ts || b.dur! - a.dur!);
  const tasks = onMain.filter(isTask);
  const long = tasks.filter((t) => t.dur! > 50_000);
  const label = (e: TraceEvent) => {
    const d = e.args?.data;
    if (e.name === 'FunctionCall' && d?.functionName) return `FunctionCall ${d.functionName}`;
    if (e.name === 'EventDispatch' && d?.type) return `EventDispatch ${d.type}`;
    return e.name;
  };
  /**
   * Self time by label of one task's events (the task first, as the root): each event's
   * duration less its direct children's, so the task's own entry is what no child covers.
   */
  const selfTimes = (inside: TraceEvent[], into: Map<string, number>) => {
    const stack: Array<{ e: TraceEvent; child: number }> = [];
    const close = (upTo: number) => {
      while (stack.length > 0 && stack.at(-1)!.e.ts + stack.at(-1)!.e.dur! <= upTo) {
        const { e, child } = stack.pop()!;
        const k = label(e);
        into.set(k, (into.get(k) ?? 0) + (e.dur! - child) / 1000);
      }
    };
    for (const e of inside) {
      close(e.ts);
      if (stack.length > 0) stack.at(-1)!.child += e.dur!;
      stack.push({ e, child: 0 });
    }
    close(Infinity);
  };
  // One pass over the sorted events, task by task (events nest inside their task).
  const whole = new Map<string, number>();
  const inLong = new Map<string, number>();
  const lines: string[] = [];
  let i = 0;
  for (const task of tasks) {
    const end = task.ts + task.dur!;
    while (i < onMain.length && onMain[i]!.ts < task.ts) i++;
    let j = i;
    // Everything that starts inside the task (a child may end a microsecond late: rounding).
    while (j < onMain.length && onMain[j]!.ts < end) j++;
    const self = new Map<string, number>();
    selfTimes(onMain.slice(i, j), self);
    for (const [k, ms] of self) whole.set(k, (whole.get(k) ?? 0) + ms);
    if (task.dur! > 50_000) {
      for (const [k, ms] of self) inLong.set(k, (inLong.get(k) ?? 0) + ms);
      const top = [...self.entries()].sort((a, b) => b[1] - a[1]).filter(([, ms]) => ms >= 1);
      const cpu = task.tdur === undefined ? '' : ` (${(task.tdur / 1000).toFixed(0)} ms on a CPU)`;
      lines.push(`  ${(task.dur! / 1000).toFixed(0).padStart(4)} ms${cpu}: ${top.slice(0, 8).map(([k, ms]) => `${k} ${ms.toFixed(0)}`).join(', ')}`);
    }
    i = j;
  }
  const print = (title: string, map: Map<string, number>) => {
    console.log(`\n${title}:`);
    for (const [k, ms] of [...map.entries()].filter(([, ms]) => ms >= 1).sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${ms.toFixed(0).padStart(8)}  ${k}`);
  };
  console.log(`\ntrace: ${tasks.length} main-thread tasks, ${long.length} over 50 ms`);
  for (const line of lines) console.log(line);
  if (long.length > 0) print('inside long tasks, by self time (ms)', inLong);
  print('all main-thread tasks, by self time (ms)', whole);
}

/** `--profile`: the page's functions by self time, to see where a frame goes. */
function printProfile(profile: { nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>; samples?: number[]; timeDeltas?: number[] }): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (f: { functionName: string; url: string; lineNumber: number }) => `${f.functionName || '(anonymous)'} ${f.url.split('/').pop() ?? ''}:${f.lineNumber}`;
  const self = new Map<string, number>();
  // Total (inclusive) time: each function counted once per sample, however deep it recurses.
  const total = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let all = 0;
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]!);
    if (!node) continue;
    const ms = (deltas[i] ?? 0) / 1000;
    all += ms;
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(byId.get(id)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + ms);
    }
  }
  const print = (title: string, map: Map<string, number>, n: number) => {
    console.log(`\n${title}:`);
    for (const [k, ms] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${ms.toFixed(0).padStart(8)}  ${k}`);
  };
  console.log(`\nprofiled ${all.toFixed(0)} ms of page time`);
  print('page CPU by self time (ms)', self, 25);
  print('page CPU by total time (ms)', total, 40);
}

await main();
