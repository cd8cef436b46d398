/**
 * What proving replicas fresh costs, and what conflation buys a screen:
 *
 *   node --conditions=@tradesync/source --import tsx bench/freshness.ts [--runs 3] [--only checksum,positions,conflation]
 *   BENCH_CPU_PROF=/tmp/prof node --conditions=@tradesync/source --import tsx bench/freshness.ts --runs 1 --only conflation   # server CPU profiles
 *
 * 1. checksum (in this process): ms per `stateChecksum` of a 10,000-order `orders`
 *    state, with the protocol's default pure-JS CRC-32 and with zlib's (what the
 *    server passes), cold (objects never serialized) and after one order changed.
 * 2. positions: gateway CPU with 1,000 clients, each on its own `orders:acct-N` stream,
 *    1,000 `order:updated` events/s round-robin, for each `--position-interval-ms`
 *    (0 = off); positions and checksums per second from GET /metrics.
 * 3. conflation: 1,000 clients each subscribed to the same 5 `market:*` streams,
 *    1,000 ticks/s over the 5, subscribed with `max_rate` and without: frames and
 *    events per client, server and client CPU, and the age of the newest price each
 *    client holds, sampled every 50 ms (see peers/freshness-worker.ts).
 *
 * Servers and clients as in bench/run.ts: `tradesync serve` in its own process on
 * 127.0.0.1, clients in two forked workers, events POSTed from here, each carrying its
 * scheduled publish time. Each run measures every setting back to back, in an order
 * rotated from run to run, so load from other work on the machine falls on each alike;
 * the tables give medians over runs and each run's value.
 * Prints Markdown tables (docs/BENCHMARKS.md, "Freshness: positions, checksums, conflation").
 */
import { execSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { applyEvent, applyEvents, canonicalJson, initialState, stateChecksum, type OrdersState } from '@tradesync/protocol';
import { cpuMs, decodeHistogram, newHistogram, now, sleep } from './peers/common.js';
import type { FreshnessCommand, FreshnessReply } from './peers/freshness-worker.js';
import { order, produce, tick } from './peers/producer.js';
import { killAll, startServer, type RunningServer } from './peers/servers.js';
import { Worker } from './peers/workers.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string', default: 'checksum,positions,conflation' },
    repeats: { type: 'string', default: '20' },
    intervals: { type: 'string', default: '0,1000,5000' },
    'max-rate': { type: 'string', default: '10' },
  },
});
const RUNS = Number(args.runs);
const ONLY = new Set(args.only.split(','));
const REPEATS = Number(args.repeats);
const INTERVALS = args.intervals.split(',').map(Number);
const MAX_RATE = Number(args['max-rate']);
if (!(RUNS >= 1 && REPEATS >= 1 && MAX_RATE > 0 && INTERVALS.every((n) => n >= 0))) {
  console.error('usage: node --conditions=@tradesync/source --import tsx bench/freshness.ts [--runs N] [--only checksum,positions,conflation] [--repeats N] [--intervals 0,1000,5000] [--max-rate 10]');
  process.exit(2);
}

const CLIENTS = 1000;
const RATE = 1000;
const WARMUP_MS = 2000;
/** Ten seconds: any window of two position intervals (5 s) holds exactly two ticks of it. */
const MEASURE_MS = 10_000;
const DRAIN_MS = 1000;
/** A directory for `node --cpu-prof` of every server process, as in bench/run.ts. */
const CPU_PROF = process.env.BENCH_CPU_PROF;
const EXEC_ARGV = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
const FRESHNESS_WORKER = new URL('./peers/freshness-worker.ts', import.meta.url).pathname;

const log = (line: string): void => console.log(line);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);
const whole = (n: number): string => n.toFixed(0);
/** The median, then each run's value: "58% (57 / 58 / 61)". */
function spread(values: readonly number[], fmt: (n: number) => string, unit = ''): string {
  return values.length === 1 ? `${fmt(values[0]!)}${unit}` : `${fmt(median(values))}${unit} (${values.map(fmt).join(' / ')})`;
}
const signed = (n: number): string => `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(1)}`;

/** Run `r`'s order of `settings`: rotated by one each run, so no setting always goes first (or last) while the machine's other load drifts. */
const rotated = <T>(settings: readonly T[], r: number): T[] => settings.map((_, i) => settings[(i + r) % settings.length]!);

// ---------------------------------------------------------------------------------------
// 1. Checksum cost, in this process
// ---------------------------------------------------------------------------------------

const ORDERS = 10_000;
const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL', 'MSFT', 'NVDA', 'EUR-USD', 'GBP-USD'];

/**
 * An open order as the simulator publishes it (`orderEntity` in packages/simulator/src/broker.ts):
 * the protocol's Order fields and the simulator's extras, decimals as strings. A new
 * object every call, as the server gets one from each event it parses.
 */
function openOrder(i: number, version: number): Record<string, unknown> {
  const filled = version % 3 === 0 ? 0 : (version % 3) * 0.0001;
  const at = new Date(Date.UTC(2026, 10, 29, 10, 0, 0) + i * 1000);
  return {
    order_id: `ord-acct-${i % 4}-r7f3a-${i + 1}`,
    symbol: SYMBOLS[i % SYMBOLS.length],
    side: i % 2 === 0 ? 'buy' : 'sell',
    order_type: 'limit',
    quantity: (0.0005 * (1 + (i % 40))).toFixed(4),
    price: (41000 + (i % 2000) * 0.5).toFixed(2),
    filled_quantity: filled.toFixed(4),
    status: filled > 0 ? 'partially_filled' : 'open',
    session_id: i % 3 === 0 ? null : `sess-${i % 50}`,
    created_at: at.toISOString(),
    updated_at: new Date(at.getTime() + version * 250).toISOString(),
    avg_fill_price: filled > 0 ? (41000 + (i % 2000) * 0.5).toFixed(2) : null,
    reduce_only: i % 7 === 0,
    reserved: (0.0005 * (1 + (i % 40)) * 41000 * 0.05).toFixed(2),
    signal_id: i % 2 === 0 ? `sig-${i}` : null,
  };
}

const orderEvent = (i: number, version: number) => ({ type: 'order:updated', data: openOrder(i, version) });

/** A state as the server's store builds it: 10,000 fresh order objects through the reducer. */
const freshState = (): OrdersState => applyEvents(initialState('orders'), Array.from({ length: ORDERS }, (_, i) => orderEvent(i, 0)));

interface ChecksumRow {
  readonly what: string;
  readonly canonical: readonly number[];
  readonly pureJs: readonly number[];
  readonly zlib: readonly number[];
}

/**
 * A full garbage collection on demand (`--expose-gc` set at run time, so the command
 * needs no extra Node flag): building a 10,000-order input leaves garbage whose
 * collection would otherwise land inside the timed call that follows.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Milliseconds `fn(input)` takes, once per input (inputs built beforehand, untimed, their garbage collected). */
function timeEach<T>(make: () => T, fn: (input: T) => unknown, times: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < times; r++) {
    const input = make();
    gc();
    const t0 = performance.now();
    fn(input);
    out.push(performance.now() - t0);
  }
  return out;
}

function checksumCost(): { rows: ChecksumRow[]; bytes: number } {
  const pureJs = (s: OrdersState): string => stateChecksum(s);
  const zlib = (s: OrdersState): string => stateChecksum(s, crc32);
  // Warm the JIT on every path before timing, as a running server's would be.
  for (let r = 0; r < 3; r++) {
    const s = freshState();
    pureJs(s);
    zlib(s);
  }
  const bytes = Buffer.byteLength(canonicalJson(freshState()));
  const cold: ChecksumRow = {
    what: 'cold: first checksum of these 10,000 order objects',
    canonical: timeEach(freshState, canonicalJson, REPEATS),
    pureJs: timeEach(freshState, pureJs, REPEATS),
    zlib: timeEach(freshState, zlib, REPEATS),
  };
  // One order replaced per measurement, the state before it already checksummed: the
  // 9,999 unchanged orders' text is cached, the orders map and the state are new objects.
  let state = freshState();
  zlib(state);
  let version = 1;
  const changeOne = (): OrdersState => {
    state = applyEvent(state, orderEvent((version * 7919) % ORDERS, version));
    version++;
    return state;
  };
  const changed: ChecksumRow = {
    what: 'after one order changed (the others cached)',
    canonical: timeEach(changeOne, canonicalJson, REPEATS),
    pureJs: timeEach(changeOne, pureJs, REPEATS),
    zlib: timeEach(changeOne, zlib, REPEATS),
  };
  // The same state again: its canonical text is cached whole, so this is the CRC alone.
  const same = (): OrdersState => state;
  const crcOnly: ChecksumRow = { what: 'same state again (text cached: the CRC alone)', canonical: [], pureJs: timeEach(same, pureJs, REPEATS), zlib: timeEach(same, zlib, REPEATS) };
  return { rows: [cold, changed, crcOnly], bytes };
}

function checksumTable({ rows, bytes }: { rows: ChecksumRow[]; bytes: number }): string {
  const cell = (v: readonly number[]): string => (v.length === 0 ? '–' : `${f1(median(v))} (${f1(percentile(v, 90))})`);
  return [
    `Checksum of a ${ORDERS.toLocaleString('en-US')}-order \`orders\` state (${(bytes / 2 ** 20).toFixed(1)} MiB of canonical JSON), ms per call, median of ${REPEATS} (p90 in brackets):`,
    '',
    '| state | canonical JSON only | `stateChecksum`, pure-JS CRC (crc-32, the default) | `stateChecksum`, zlib `crc32` (the server) |',
    '|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.what} | ${cell(r.canonical)} | ${cell(r.pureJs)} | ${cell(r.zlib)} |`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Shared by the two socket scenarios
// ---------------------------------------------------------------------------------------

/** The counters of GET /metrics (summed over labels). */
async function metrics(server: RunningServer): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{[^}]*\})? ([-+\d.eE]+)$/.exec(line);
    if (match) out.set(match[1]!, (out.get(match[1]!) ?? 0) + Number(match[2]));
  }
  return out;
}

/** Per second over the window, of a counter read before and after it. */
const rateOf = (before: Map<string, number>, after: Map<string, number>, name: string): number => ((after.get(name) ?? 0) - (before.get(name) ?? 0)) / (MEASURE_MS / 1000);

/** The window's timing: events from `start`, counted from `windowStart` to `windowEnd`. */
function schedule(): { start: number; windowStart: number; windowEnd: number } {
  const start = now() + 100;
  return { start, windowStart: start + WARMUP_MS, windowEnd: start + WARMUP_MS + MEASURE_MS };
}

// ---------------------------------------------------------------------------------------
// 2. Position messages' CPU share
// ---------------------------------------------------------------------------------------

interface PositionsRow {
  readonly intervalMs: number;
  readonly serverCpuPct: number;
  readonly positionsPerSec: number;
  readonly checksumsPerSec: number;
  /** Event-loop time spent in checksums, % of one core (tradesync_checksum_seconds_total). */
  readonly checksumCpuPct: number;
  readonly framesPerSec: number;
  readonly deliveredPerSec: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly seqErrors: number;
}

async function positionsPhase(intervalMs: number): Promise<PositionsRow> {
  const server = await startServer('tradesync', { execArgv: EXEC_ARGV, serveArgs: ['--position-interval-ms', String(intervalMs)] });
  const workers = [new Worker(), new Worker()];
  try {
    const streams = Array.from({ length: CLIENTS }, (_, i) => `orders:acct-${i}`);
    const half = CLIENTS / 2;
    await Promise.all(workers.map((w, i) => w.ask({ op: 'connect', system: 'tradesync', port: server.port, clients: streams.slice(i * half, (i + 1) * half).map((stream) => ({ stream })) }, 'connected', 300_000)));
    const { start, windowStart, windowEnd } = schedule();
    for (const w of workers) w.send({ op: 'window', start: windowStart, end: windowEnd });
    // Five open orders per account, each updated in turn: the per-account scenario of bench/run.ts.
    const producing = produce({ port: server.port, path: server.publishPath, rate: RATE, start, durationMs: WARMUP_MS + MEASURE_MS, makeEvent: (i, sched) => order(streams[i % CLIENTS]!, `o-${Math.floor(i / CLIENTS) % 5}`, sched) });
    await sleep(windowStart - now());
    const m0 = await metrics(server);
    const cpu0 = cpuMs(server.pid);
    await sleep(windowEnd - now());
    const cpu1 = cpuMs(server.pid);
    const m1 = await metrics(server);
    await producing;
    await sleep(DRAIN_MS);
    const collected = await Promise.all(workers.map((w) => w.ask({ op: 'collect' }, 'collected')));
    const histogram = newHistogram();
    for (const c of collected) histogram.add(decodeHistogram(c.histogram));
    const row: PositionsRow = {
      intervalMs,
      serverCpuPct: ((cpu1 - cpu0) / MEASURE_MS) * 100,
      positionsPerSec: rateOf(m0, m1, 'tradesync_stream_positions_sent_total'),
      checksumsPerSec: rateOf(m0, m1, 'tradesync_checksums_total'),
      checksumCpuPct: rateOf(m0, m1, 'tradesync_checksum_seconds_total') * 100,
      framesPerSec: rateOf(m0, m1, 'tradesync_frames_out_total'),
      deliveredPerSec: collected.reduce((n, c) => n + c.received, 0) / (MEASURE_MS / 1000),
      p99Ms: histogram.getValueAtPercentile(99) / 1000,
      maxMs: histogram.maxValue / 1000,
      seqErrors: collected.reduce((n, c) => n + c.seqErrors + c.gaps + c.dups, 0),
    };
    log(`  ${intervalMs === 0 ? 'positions off' : `positions every ${intervalMs} ms`}: server CPU ${whole(row.serverCpuPct)}%, ${f1(row.positionsPerSec)} positions/s, ${f1(row.checksumsPerSec)} checksums/s (${f2(row.checksumCpuPct)}% CPU), ${Math.round(row.framesPerSec)} frames/s, ${Math.round(row.deliveredPerSec)} events/s delivered, p99 ${f1(row.p99Ms)} max ${f1(row.maxMs)} ms`);
    return row;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await server.stop();
  }
}

function positionsTable(runs: readonly (readonly PositionsRow[])[]): string {
  const of = (intervalMs: number): PositionsRow[] => runs.map((run) => run.find((r) => r.intervalMs === intervalMs)!);
  const off = INTERVALS.includes(0) ? of(0) : undefined;
  const lines = [
    `Position messages at ${CLIENTS.toLocaleString('en-US')} clients, each on its own \`orders:acct-N\` stream (≤ 5 open orders each), ${RATE.toLocaleString('en-US')} \`order:updated\` events/s round-robin (1 per client per second); medians of ${runs.length} run(s), each run's value in brackets:`,
    '',
    '| `--position-interval-ms` | server CPU | Δ CPU vs off (positions\' share) | positions sent/s | checksums/s | checksum time (metric) | frames sent/s | events delivered/s | event latency p99 ms | max ms | seq / offset errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const intervalMs of INTERVALS) {
    const rows = of(intervalMs);
    // Differences run by run (the settings of one run ran back to back under the same load), then their median.
    const delta = off && intervalMs !== 0 ? spread(rows.map((r, i) => r.serverCpuPct - off[i]!.serverCpuPct), signed, ' pts') : '–';
    lines.push(
      `| ${intervalMs === 0 ? '0 (off)' : intervalMs} | ${spread(rows.map((r) => r.serverCpuPct), whole, '%')} | ${delta} | ${f1(median(rows.map((r) => r.positionsPerSec)))} | ${f1(median(rows.map((r) => r.checksumsPerSec)))} | ${f2(median(rows.map((r) => r.checksumCpuPct)))}% | ${Math.round(median(rows.map((r) => r.framesPerSec)))} | ${Math.round(median(rows.map((r) => r.deliveredPerSec)))} | ${spread(rows.map((r) => r.p99Ms), f1)} | ${spread(rows.map((r) => r.maxMs), f1)} | ${rows.reduce((n, r) => n + r.seqErrors, 0)} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------
// 3. Conflation
// ---------------------------------------------------------------------------------------

const MARKET_SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL', 'EUR-USD'];
const MARKET_STREAMS = MARKET_SYMBOLS.map((s) => `market:${s}`);

interface ConflationRow {
  readonly maxRate: number | undefined;
  /** Medians over clients. */
  readonly framesPerClient: number;
  readonly eventsPerClient: number;
  /** What the server sent, per client (GET /metrics), against what the clients read: a gap is a backlog. */
  readonly sentFramesPerClient: number;
  readonly sentEventsPerClient: number;
  readonly serverCpuPct: number;
  /** Both client workers together, % of one core. */
  readonly clientCpuPct: number;
  readonly ageP50Ms: number;
  readonly ageP99Ms: number;
  readonly ageMaxMs: number;
  readonly closedByServer: number;
}

async function conflationPhase(maxRate: number | undefined): Promise<ConflationRow> {
  const server = await startServer('tradesync', { execArgv: EXEC_ARGV });
  const workers = [new Worker<FreshnessCommand, FreshnessReply>(FRESHNESS_WORKER), new Worker<FreshnessCommand, FreshnessReply>(FRESHNESS_WORKER)];
  try {
    await Promise.all(workers.map((w) => w.ask({ op: 'connect', port: server.port, clients: CLIENTS / 2, streams: MARKET_STREAMS, maxRate }, 'connected', 300_000)));
    const { start, windowStart, windowEnd } = schedule();
    for (const w of workers) w.send({ op: 'window', start: windowStart, end: windowEnd });
    const k = MARKET_SYMBOLS.length;
    const producing = produce({ port: server.port, path: server.publishPath, rate: RATE, start, durationMs: WARMUP_MS + MEASURE_MS, makeEvent: (i, sched) => tick(MARKET_STREAMS[i % k]!, sched, MARKET_SYMBOLS[i % k]) });
    await sleep(windowStart - now());
    const m0 = await metrics(server);
    const cpu0 = [server.pid, ...workers.map((w) => w.pid)].map(cpuMs);
    await sleep(windowEnd - now());
    const cpu1 = [server.pid, ...workers.map((w) => w.pid)].map(cpuMs);
    const m1 = await metrics(server);
    await producing;
    const collected = await Promise.all(workers.map((w) => w.ask({ op: 'collect' }, 'collected')));
    const ages = newHistogram();
    for (const c of collected) ages.add(decodeHistogram(c.ages));
    const seconds = MEASURE_MS / 1000;
    const used = cpu1.map((c, i) => ((c - cpu0[i]!) / MEASURE_MS) * 100);
    const row: ConflationRow = {
      maxRate,
      framesPerClient: median(collected.flatMap((c) => c.frames)) / seconds,
      eventsPerClient: median(collected.flatMap((c) => c.events)) / seconds,
      sentFramesPerClient: rateOf(m0, m1, 'tradesync_frames_out_total') / CLIENTS,
      sentEventsPerClient: rateOf(m0, m1, 'tradesync_events_delivered_total') / CLIENTS,
      serverCpuPct: used[0]!,
      clientCpuPct: used[1]! + used[2]!,
      ageP50Ms: ages.getValueAtPercentile(50) / 1000,
      ageP99Ms: ages.getValueAtPercentile(99) / 1000,
      ageMaxMs: ages.maxValue / 1000,
      closedByServer: collected.reduce((n, c) => n + c.closedByServer, 0),
    };
    log(`  ${maxRate === undefined ? 'unconflated' : `max_rate ${maxRate}`}: ${f1(row.framesPerClient)} frames/s and ${f1(row.eventsPerClient)} events/s per client (server sent ${f1(row.sentFramesPerClient)} and ${f1(row.sentEventsPerClient)}), server CPU ${whole(row.serverCpuPct)}%, clients CPU ${whole(row.clientCpuPct)}%, age p50 ${f1(row.ageP50Ms)} p99 ${f1(row.ageP99Ms)} max ${f1(row.ageMaxMs)} ms, ${row.closedByServer} closed by server`);
    return row;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await server.stop();
  }
}

function conflationTable(runs: readonly (readonly ConflationRow[])[]): string {
  const lines = [
    `Conflation: ${CLIENTS.toLocaleString('en-US')} clients, each subscribed to the same ${MARKET_STREAMS.length} \`market:*\` streams, ${RATE.toLocaleString('en-US')} ticks/s over the ${MARKET_STREAMS.length}; frames and events per client are medians over clients, ages over every client × symbol × 50 ms sample; medians of ${runs.length} run(s), each run's value in brackets:`,
    '',
    '| subscription | frames/s per client | events/s per client | sent by server per client: frames/s, events/s | server CPU | client workers CPU (2 processes) | age of newest price p50 ms | p99 ms | max ms | closed by server |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const maxRate of [MAX_RATE, undefined]) {
    const rows = runs.map((run) => run.find((r) => r.maxRate === maxRate)!);
    const col = (pick: (r: ConflationRow) => number, fmt: (n: number) => string, unit = ''): string => spread(rows.map(pick), fmt, unit);
    lines.push(
      `| ${maxRate === undefined ? 'unconflated' : `\`max_rate\` ${maxRate}`} | ${col((r) => r.framesPerClient, f1)} | ${col((r) => r.eventsPerClient, f1)} | ${f1(median(rows.map((r) => r.sentFramesPerClient)))}, ${f1(median(rows.map((r) => r.sentEventsPerClient)))} | ${col((r) => r.serverCpuPct, whole, '%')} | ${col((r) => r.clientCpuPct, whole, '%')} | ${col((r) => r.ageP50Ms, f1)} | ${col((r) => r.ageP99Ms, f1)} | ${col((r) => r.ageMaxMs, f1)} | ${rows.map((r) => r.closedByServer).join(' / ')} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------

const sh = (cmd: string): string => {
  try {
    return execSync(cmd, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};

async function main(): Promise<void> {
  const startedAt = new Date();
  const load = loadavg();
  const tables: string[] = [];
  if (ONLY.has('checksum')) {
    log('checksum cost');
    tables.push(checksumTable(checksumCost()));
  }
  if (ONLY.has('positions')) {
    const runs: PositionsRow[][] = [];
    for (let r = 1; r <= RUNS; r++) {
      log(`positions, run ${r}/${RUNS}`);
      const run: PositionsRow[] = [];
      for (const intervalMs of rotated(INTERVALS, r - 1)) run.push(await positionsPhase(intervalMs));
      runs.push(run);
    }
    tables.push(positionsTable(runs));
  }
  if (ONLY.has('conflation')) {
    const runs: ConflationRow[][] = [];
    for (let r = 1; r <= RUNS; r++) {
      log(`conflation, run ${r}/${RUNS}`);
      const run: ConflationRow[] = [];
      for (const maxRate of rotated([MAX_RATE, undefined], r - 1)) run.push(await conflationPhase(maxRate));
      runs.push(run);
    }
    tables.push(conflationTable(runs));
  }
  const loadAfter = loadavg();
  const machine = [
    `- date: ${startedAt.toISOString()} (took ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s)`,
    `- command: \`node --conditions=@tradesync/source --import tsx bench/freshness.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
    `- machine: ${sh('nproc')} cores (\`nproc\`), ${sh("free -g | awk '/^Mem:/ {print $2}'")} GiB RAM, Node ${process.version}, Linux ${sh('uname -r')}`,
    `- load average at start ${load.map((l) => l.toFixed(2)).join(' / ')}, at end ${loadAfter.map((l) => l.toFixed(2)).join(' / ')}`,
  ].join('\n');
  log(`\n${machine}\n\n${tables.join('\n\n')}`);
}

try {
  await main();
} finally {
  killAll();
}
