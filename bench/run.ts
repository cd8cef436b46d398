/**
 * TradeSync's gateway against its peers: raw `ws` broadcasting a pre-serialized
 * string (the floor) and Socket.IO 4 with connection state recovery.
 *
 *   npm run bench                 # the full suite, a few minutes on 2 cores
 *   npm run bench -- --quick      # about 1.5 minutes: one rate, shorter windows
 *   BENCH_CPU_PROF=/tmp/prof npm run bench -- --quick --only fanout --systems tradesync
 *
 * Every server runs in its own process; clients run in two forked worker processes;
 * the producer (this process) POSTs events on a fixed schedule and receivers measure
 * from each event's scheduled time. Results go to stdout and to docs/BENCHMARKS.md
 * (section "Gateway versus peers"; `--no-docs` to skip).
 */
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { Histogram } from 'hdr-histogram-js';
import { cpuMs, cpuMsOf, decodeHistogram, newHistogram, now, rssBytesOf, sleep, SYSTEMS, type ClientSpec, type System } from './peers/common.js';
import { order, produce, tick } from './peers/producer.js';
import { killAll, startServer, type RunningServer } from './peers/servers.js';
import { Worker } from './peers/workers.js';
import { ingest, type IngestRow } from './ingest.js';
import { plotLatency } from './plot.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    systems: { type: 'string' },
    rates: { type: 'string' },
    batches: { type: 'string' },
    runs: { type: 'string' },
    idle: { type: 'string' },
    'no-docs': { type: 'boolean', default: false },
  },
});
const QUICK = args.quick;
const ONLY = new Set((args.only ?? 'fanout,accounts,storm,resync,memory,ingest').split(','));
const RUN_SYSTEMS = args.systems ? (args.systems.split(',') as System[]) : SYSTEMS;
const CLIENTS = 1000;
const RATES = args.rates ? args.rates.split(',').map(Number) : QUICK ? [300] : [100, 200, 300, 1000];
const ACCOUNT_RATE = 1000;
const WARMUP_MS = QUICK ? 1000 : 2000;
const MEASURE_MS = QUICK ? 2000 : 8000;
const DRAIN_MS = QUICK ? 1000 : 2000;
const IDLE_CONNECTIONS = args.idle ? Number(args.idle) : QUICK ? 2000 : 10_000;
const RESYNC_REPEATS = QUICK ? 3 : 7;
const CPU_PROF = process.env.BENCH_CPU_PROF;
const INGEST_BATCHES = args.batches ? args.batches.split(',').map(Number) : [1, 10, 100];
const INGEST_MS = QUICK ? 2000 : 5000;
const INGEST_IN_FLIGHT = 4;

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

interface LatencyRow {
  readonly scenario: string;
  readonly system: System;
  readonly rate: number;
  readonly expected: number;
  readonly received: number;
  readonly deliveredPerSec: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly cpuPct: number;
  /** Server CPU time per delivered message (µs): what the load generator cannot hide. */
  readonly usPerMsg: number;
  /** Server CPU time per connected client per second of the window (µs). */
  readonly usPerClientSec: number;
  /** CPU of the client worker processes over the window (% of one core, summed). */
  readonly clientCpuPct: number;
  readonly rssMb: number;
  readonly notes: string;
}
interface StormRow {
  readonly system: System;
  readonly clients: number;
  readonly syncedMs: number;
  readonly synced: number;
  readonly recovered: number;
  readonly failed: number;
  readonly cpuMs: number;
  readonly cpuPct: number;
}
interface ResyncRow {
  readonly system: System;
  readonly kind: string;
  readonly medianMs: number;
  readonly maxMs: number;
  readonly bytes: number;
}
interface MemoryRow {
  readonly system: System;
  readonly connections: number;
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  readonly perConnKb: number;
}

let latencyRows: LatencyRow[] = [];
let stormRows: StormRow[] = [];
let resyncRows: ResyncRow[] = [];
let memoryRows: MemoryRow[] = [];
let ingestRows: IngestRow[] = [];

/** Whole suites run one after another; the tables give each number's median over them. */
const RUNS = Math.max(1, Number(args.runs ?? 1));
const latencyKey = (r: LatencyRow) => `${r.scenario}|${r.system}|${r.rate}`;
const stormKey = (r: StormRow) => r.system;
const resyncKey = (r: ResyncRow) => r.kind;
const memoryKey = (r: MemoryRow) => r.system;
const ingestKey = (r: IngestRow) => `${r.system}|${r.durability}|${r.batch}`;
/** `table|row key|field` → [min, max] over the runs. */
const spreads = new Map<string, readonly [number, number]>();

/** Each numeric field's median over the runs, per row key (text fields from the first run). */
function medians<T extends object>(table: string, runs: readonly (readonly T[])[], key: (row: T) => string): T[] {
  const groups = new Map<string, T[]>();
  for (const run of runs) for (const row of run) groups.set(key(row), [...(groups.get(key(row)) ?? []), row]);
  return [...groups].map(([k, rows]) => {
    const out: Record<string, unknown> = { ...rows[0] };
    for (const [field, value] of Object.entries(rows[0]!)) {
      if (typeof value !== 'number') continue;
      const values = rows.map((r) => (r as Record<string, number>)[field]!).filter(Number.isFinite).sort((a, b) => a - b);
      if (values.length === 0) continue;
      const mid = values.length >> 1;
      out[field] = values.length % 2 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
      spreads.set(`${table}|${k}|${field}`, [values[0]!, values.at(-1)!]);
    }
    return out as T;
  });
}

/** A median with its spread over the runs: `12.3 (11.0–15.2)`. */
function withSpread(table: string, key: string, field: string, value: number, format: (n: number) => string): string {
  const range = spreads.get(`${table}|${key}|${field}`);
  return RUNS > 1 && range ? `${format(value)} (${format(range[0])}–${format(range[1])})` : format(value);
}

const ms = (us: number): number => us / 1000;
const log = (line: string): void => console.log(line);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

function serverFlags(): readonly string[] {
  return CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
}

/** Spreads clients over two worker processes and connects them. */
async function connectClients(server: RunningServer, specs: readonly ClientSpec[]): Promise<{ workers: Worker[]; connected: number }> {
  const workers = [new Worker(), new Worker()];
  const half = Math.ceil(specs.length / 2);
  const parts = [specs.slice(0, half), specs.slice(half)];
  const replies = await Promise.all(workers.map((w, i) => w.ask({ op: 'connect', system: server.system, port: server.clientPort, clients: parts[i]! }, 'connected', 300_000)));
  const connected = replies.reduce((n, r) => n + r.count, 0);
  const failed = replies.reduce((n, r) => n + r.failed, 0);
  if (failed > 0) log(`  ${server.system}: ${failed} clients failed to connect`);
  return { workers, connected };
}

async function withServer<T>(system: System, body: (server: RunningServer) => Promise<T>): Promise<T> {
  const server = await startServer(system, { execArgv: serverFlags() });
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}

async function stopWorkers(workers: readonly Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.stop()));
}

/**
 * One measured phase: warm-up, then a fixed window whose events are counted and timed
 * by the receivers, then a drain. CPU is the server's over the window.
 */
async function phase(
  server: RunningServer,
  workers: readonly Worker[],
  scenario: string,
  rate: number,
  makeEvent: (i: number, sched: number) => unknown,
  /** How many deliveries one event is owed. */
  fanout: number,
  /** Clients connected during the phase. */
  clients: number,
): Promise<LatencyRow> {
  const start = now() + 100;
  const windowStart = start + WARMUP_MS;
  const windowEnd = windowStart + MEASURE_MS;
  for (const w of workers) w.send({ op: 'window', start: windowStart, end: windowEnd });
  const producing = produce({ port: server.port, path: server.publishPath, rate, start, durationMs: WARMUP_MS + MEASURE_MS, makeEvent });
  await sleep(windowStart - now());
  const cpu0 = cpuMsOf(server.pids);
  const workerCpu = () => workers.reduce((n, w) => n + cpuMs(w.pid), 0);
  const clientCpu0 = workerCpu();
  await sleep(windowEnd - now());
  const cpu1 = cpuMsOf(server.pids);
  const clientCpu1 = workerCpu();
  const rss = rssBytesOf(server.pids);
  const produced = await producing;
  await sleep(DRAIN_MS);
  const collected = await Promise.all(workers.map((w) => w.ask({ op: 'collect' }, 'collected')));
  const histogram: Histogram = newHistogram();
  for (const c of collected) histogram.add(decodeHistogram(c.histogram));
  let inWindow = 0;
  for (let i = 0; i < produced.sent; i++) {
    // Rounded as in the event (`tick`/`order` carry 3 decimals), so a boundary event is counted as the receivers count it.
    const s = Number(produced.schedOf(i).toFixed(3));
    if (s >= windowStart && s < windowEnd) inWindow++;
  }
  const received = collected.reduce((n, c) => n + c.received, 0);
  const sum = (k: 'seqErrors' | 'gaps' | 'dups' | 'closedByServer'): number => collected.reduce((n, c) => n + c[k], 0);
  const notes = [
    produced.failed > 0 ? `${produced.failed} publishes failed` : '',
    sum('closedByServer') > 0 ? `${sum('closedByServer')} closed by server` : '',
    server.system === 'tradesync' ? `seq errors ${sum('seqErrors')}, gaps ${sum('gaps')}, dups ${sum('dups')}` : '',
  ].filter(Boolean).join('; ');
  const row: LatencyRow = {
    scenario,
    system: server.system,
    rate,
    expected: inWindow * fanout,
    received,
    deliveredPerSec: received / (MEASURE_MS / 1000),
    p50: ms(histogram.getValueAtPercentile(50)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    cpuPct: ((cpu1 - cpu0) / MEASURE_MS) * 100,
    usPerMsg: received > 0 ? ((cpu1 - cpu0) * 1000) / received : Number.NaN,
    usPerClientSec: clients > 0 ? ((cpu1 - cpu0) * 1000) / clients / (MEASURE_MS / 1000) : Number.NaN,
    clientCpuPct: ((clientCpu1 - clientCpu0) / MEASURE_MS) * 100,
    rssMb: rss / 2 ** 20,
    notes,
  };
  latencyRows.push(row);
  log(`  ${scenario} ${server.system} @${rate}/s: ${fmtLatency(row)}`);
  return row;
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

const FANOUT_STREAM = 'market:BENCH';

/** (3) The reconnect storm, then (1) fan-out to the same 1,000 clients of one stream at each rate. */
async function fanoutAndStorm(system: System): Promise<void> {
  await withServer(system, async (server) => {
    const specs = Array.from({ length: CLIENTS }, () => ({ stream: FANOUT_STREAM }));
    const { workers, connected } = await connectClients(server, specs);
    try {
      // The storm first: after a saturating fan-out rate a server may still be draining its backlog.
      if (ONLY.has('storm')) await reconnectStorm(server, workers, connected);
      if (ONLY.has('fanout')) {
        for (const rate of RATES) await phase(server, workers, 'fan-out', rate, (_i, sched) => tick(FANOUT_STREAM, sched), connected, connected);
      }
    } finally {
      await stopWorkers(workers);
    }
  });
}

/**
 * Events per second during the storm: enough that every client has missed events to
 * recover, low enough that the fan-out itself (measured above) does not dominate the
 * reconnect cost being measured.
 */
const STORM_RATE = 10;

/** (3) Every client cut at once while events flow; time until all are synced again. */
async function reconnectStorm(server: RunningServer, workers: readonly Worker[], clients: number): Promise<void> {
  const abort = new AbortController();
  const producing = produce({ port: server.port, path: server.publishPath, rate: STORM_RATE, start: now(), durationMs: 60_000, makeEvent: (_i, sched) => tick(FANOUT_STREAM, sched), signal: abort.signal });
  try {
    await sleep(1000);
    const cpu0 = cpuMsOf(server.pids);
    const t0 = now();
    const replies = await Promise.all(workers.map((w) => w.ask({ op: 'storm' }, 'stormed', 60_000)));
    const t1 = now();
    const cpu1 = cpuMsOf(server.pids);
    const cutAt = Math.min(...replies.map((r) => r.cutAt));
    const lastSyncedAt = Math.max(...replies.map((r) => r.lastSyncedAt));
    const row: StormRow = {
      system: server.system,
      clients,
      syncedMs: lastSyncedAt - cutAt,
      synced: replies.reduce((n, r) => n + r.synced, 0),
      recovered: replies.reduce((n, r) => n + r.recovered, 0),
      failed: replies.reduce((n, r) => n + r.failed, 0),
      cpuMs: cpu1 - cpu0,
      cpuPct: ((cpu1 - cpu0) / (t1 - t0)) * 100,
    };
    stormRows.push(row);
    log(`  storm ${server.system}: ${row.synced}/${clients} synced in ${row.syncedMs.toFixed(0)} ms (recovered ${row.recovered}), server CPU ${row.cpuMs.toFixed(0)} ms`);
  } finally {
    abort.abort();
    await producing;
  }
}

/** (2) 1,000 clients each on its own account stream; events round-robin over the accounts. */
async function accounts(system: System): Promise<void> {
  await withServer(system, async (server) => {
    const streams = Array.from({ length: CLIENTS }, (_, i) => `orders:acct-${i}`);
    const { workers, connected } = await connectClients(server, streams.map((stream) => ({ stream })));
    try {
      await phase(server, workers, 'per-account', ACCOUNT_RATE, (i, sched) => order(streams[i % CLIENTS]!, `o-${Math.floor(i / CLIENTS) % 5}`, sched), 1, connected);
    } finally {
      await stopWorkers(workers);
    }
  });
}

/** (5) Server RSS per idle connection with one subscription. */
async function memory(system: System): Promise<void> {
  await withServer(system, async (server) => {
    await sleep(1500);
    const before = rssBytesOf(server.pids);
    const { workers, connected } = await connectClients(server, Array.from({ length: IDLE_CONNECTIONS }, () => ({ stream: system === 'tradesync' ? 'market:IDLE' : 'idle' })));
    try {
      await sleep(3000);
      const after = rssBytesOf(server.pids);
      const row: MemoryRow = { system, connections: connected, rssBeforeMb: before / 2 ** 20, rssAfterMb: after / 2 ** 20, perConnKb: (after - before) / connected / 1024 };
      memoryRows.push(row);
      log(`  memory ${system}: ${connected} idle connections, RSS ${row.rssBeforeMb.toFixed(0)} → ${row.rssAfterMb.toFixed(0)} MB = ${row.perConnKb.toFixed(1)} KB/connection`);
    } finally {
      await stopWorkers(workers);
    }
  });
}

/** (4) TradeSync: resume after 1,000 and 10,000 missed events vs a snapshot of 10,000 open orders. */
async function resync(): Promise<void> {
  await withServer('tradesync', async (server) => {
    const stream = 'orders:resync';
    const ORDERS = 10_000;
    for (let i = 0; i < ORDERS; i += 1000) {
      const batch = Array.from({ length: 1000 }, (_, j) => order(stream, `o-${i + j}`, now()));
      const res = await fetch(`http://127.0.0.1:${server.port}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      if (!res.ok) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
    }
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { perMessageDeflate: false });
    const inbox: { buf: Buffer; at: number }[] = [];
    let wake: (() => void) | undefined;
    ws.on('message', (buf: Buffer) => {
      inbox.push({ buf, at: now() });
      wake?.();
    });
    const next = async (type: string): Promise<{ buf: Buffer; at: number; msg: Record<string, unknown> }> => {
      for (;;) {
        const item = inbox.shift();
        if (item) {
          const msg = JSON.parse(item.buf.toString()) as Record<string, unknown>;
          if (msg.type === type) return { ...item, msg };
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    try {
      await next('connected');
      const measure = async (kind: string, since: { epoch: string; offset: number } | undefined): Promise<{ epoch: string; head: number }> => {
        const times: number[] = [];
        let bytes = 0;
        let epoch = '';
        let head = 0;
        for (let r = 0; r < RESYNC_REPEATS; r++) {
          const t0 = now();
          ws.send(JSON.stringify({ id: `r${r}`, type: 'subscribe', data: { stream, since } }));
          const reply = await next('subscribed');
          times.push(reply.at - t0);
          bytes = reply.buf.length;
          epoch = reply.msg.epoch as string;
          head = reply.msg.offset as number;
          const expectRecovered = since !== undefined;
          if (reply.msg.recovered !== expectRecovered) throw new Error(`${kind}: expected recovered=${expectRecovered}`);
          ws.send(JSON.stringify({ id: `u${r}`, type: 'unsubscribe', data: { stream } }));
          await next('unsubscribed');
        }
        times.sort((a, b) => a - b);
        const row: ResyncRow = { system: 'tradesync', kind, medianMs: times[Math.floor(times.length / 2)]!, maxMs: times[times.length - 1]!, bytes };
        resyncRows.push(row);
        log(`  resync ${kind}: median ${row.medianMs.toFixed(1)} ms, max ${row.maxMs.toFixed(1)} ms, ${(bytes / 1024).toFixed(0)} KB`);
        return { epoch, head };
      };
      const { epoch, head } = await measure(`snapshot of ${ORDERS} open orders`, undefined);
      await measure('resume after 1,000 missed events', { epoch, offset: head - 1000 });
      await measure('resume after 10,000 missed events', { epoch, offset: head - 10_000 });
    } finally {
      ws.terminate();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
const fmtLatency = (r: LatencyRow): string =>
  `${r.received}/${r.expected} delivered (${Math.round(r.deliveredPerSec)}/s), p50 ${f1(r.p50)} p99 ${f1(r.p99)} p99.9 ${f1(r.p999)} max ${f1(r.max)} ms, CPU ${r.cpuPct.toFixed(0)}% (${f2(r.usPerMsg)} µs/msg; clients ${r.clientCpuPct.toFixed(0)}%), RSS ${r.rssMb.toFixed(0)} MB${r.notes ? ` (${r.notes})` : ''}`;

function tables(): string {
  const lines: string[] = [];
  lines.push('| scenario | system | events/s in | delivered msgs/s | dropped / lag | p50 ms | p99 ms | p99.9 ms | max ms | server CPU | server µs/msg | server µs/client/s | client workers CPU | server RSS MB | notes |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of latencyRows) {
    lines.push(
      `| ${r.scenario} | ${r.system} | ${r.rate} | ${Math.round(r.deliveredPerSec)} | ${r.expected - r.received} | ${f1(r.p50)} | ${withSpread('latency', latencyKey(r), 'p99', r.p99, f1)} | ${f1(r.p999)} | ${f1(r.max)} | ${r.cpuPct.toFixed(0)}% | ${withSpread('latency', latencyKey(r), 'usPerMsg', r.usPerMsg, f2)} | ${f1(r.usPerClientSec)} | ${r.clientCpuPct.toFixed(0)}% | ${r.rssMb.toFixed(0)} | ${r.notes} |`,
    );
  }
  const peers = SYSTEMS.filter((s) => s !== 'tradesync');
  lines.push('', 'Ratios (TradeSync ÷ peer; server µs/msg and p99: lower is better; delivered: higher is better):', '');
  lines.push(`| scenario | rate | ${peers.flatMap((p) => [`µs/msg ÷ ${p}`, `p99 ÷ ${p}`, `delivered ÷ ${p}`]).join(' | ')} |`);
  lines.push(`|---|---:|${peers.flatMap(() => ['---:', '---:', '---:']).join('|')}|`);
  for (const r of latencyRows.filter((x) => x.system === 'tradesync')) {
    const peer = (s: System) => latencyRows.find((x) => x.system === s && x.scenario === r.scenario && x.rate === r.rate);
    const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b && Number.isFinite(a) ? (a / b).toFixed(2) : '–');
    lines.push(`| ${r.scenario} | ${r.rate} | ${peers.flatMap((p) => [ratio(r.usPerMsg, peer(p)?.usPerMsg), ratio(r.p99, peer(p)?.p99), ratio(r.deliveredPerSec, peer(p)?.deliveredPerSec)]).join(' | ')} |`);
  }
  if (stormRows.length > 0) {
    lines.push('', `Reconnect storm (every client cut at once while ${STORM_RATE} events/s flow; all reconnect immediately, no backoff):`, '');
    lines.push('| system | clients | all synced after ms | synced | resumed (recovered) | failed | server CPU ms | server CPU % |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of stormRows) lines.push(`| ${r.system} | ${r.clients} | ${r.failed > 0 ? `not all within 20 s` : withSpread('storm', stormKey(r), 'syncedMs', r.syncedMs, (n) => n.toFixed(0))} | ${r.synced} | ${r.system === 'raw-ws' ? 'n/a' : r.recovered} | ${r.failed} | ${r.cpuMs.toFixed(0)} | ${r.cpuPct.toFixed(0)}% |`);
  }
  if (resyncRows.length > 0) {
    lines.push('', `Resync cost, one client, TradeSync (subscribe → \`subscribed\` reply; ${RESYNC_REPEATS} repeats):`, '');
    lines.push('| what | median ms | max ms | reply bytes |');
    lines.push('|---|---:|---:|---:|');
    for (const r of resyncRows) lines.push(`| ${r.kind} | ${f1(r.medianMs)} | ${f1(r.maxMs)} | ${r.bytes.toLocaleString('en-US')} |`);
  }
  if (ingestRows.length > 0) {
    lines.push('', `Ingest (events acknowledged as stored per second; ${INGEST_IN_FLIGHT} requests in flight, ${INGEST_MS / 1000} s each; latency of one request's acknowledgement):`, '');
    lines.push('| system | durability | batch | events/s acknowledged | p50 ms | p99 ms | server µs/event | failed |');
    lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
    for (const r of ingestRows) lines.push(`| ${r.system} | ${r.durability} | ${r.batch} | ${withSpread('ingest', ingestKey(r), 'eventsPerSec', r.eventsPerSec, (n) => String(Math.round(n)))} | ${f1(r.p50)} | ${f1(r.p99)} | ${f1(r.usPerEvent)} | ${r.failed} |`);
  }
  if (memoryRows.length > 0) {
    lines.push('', 'Idle connections, one subscription each (server RSS after − before, ÷ connections):', '');
    lines.push('| system | connections | RSS before MB | RSS after MB | KB per connection |');
    lines.push('|---|---:|---:|---:|---:|');
    for (const r of memoryRows) lines.push(`| ${r.system} | ${r.connections} | ${r.rssBeforeMb.toFixed(0)} | ${r.rssAfterMb.toFixed(0)} | ${withSpread('memory', memoryKey(r), 'perConnKb', r.perConnKb, f1)} |`);
  }
  return lines.join('\n');
}

function targets(): string {
  const lines = ['| goal (issue: 2 cores, one run side by side, medians) | measured | met |', '|---|---|---|'];
  const row = (target: string, measured: string, met: boolean | undefined) => lines.push(`| ${target} | ${measured} | ${met === undefined ? 'not measured' : met ? 'yes' : '**no**'} |`);
  const find = (s: System, scenario: string, rate: number) => latencyRows.find((r) => r.system === s && r.scenario === scenario && r.rate === rate);
  for (const rate of [100, 300]) {
    const ts = find('tradesync', 'fan-out', rate);
    const raw = find('raw-ws', 'fan-out', rate);
    row(
      `server µs/msg ≤ raw ws's, fan-out ${rate}/s × 1,000 clients`,
      ts && raw ? `${f2(ts.usPerMsg)} vs ${f2(raw.usPerMsg)} µs/msg (${(ts.usPerMsg / raw.usPerMsg).toFixed(2)}×)` : '–',
      ts && raw ? ts.usPerMsg <= raw.usPerMsg : undefined,
    );
  }
  const at100 = find('tradesync', 'fan-out', 100);
  row('p99 < 50 ms, fan-out 100/s × 1,000 clients', at100 ? `p99 ${f1(at100.p99)} ms, ${at100.received}/${at100.expected} delivered` : '–', at100 ? at100.p99 < 50 && at100.received >= at100.expected : undefined);
  const acct = find('tradesync', 'per-account', ACCOUNT_RATE);
  const acctRaw = find('raw-ws', 'per-account', ACCOUNT_RATE);
  row(
    `per-account (1,000 own streams, ${ACCOUNT_RATE}/s): server CPU and p99 ≤ 1.5× raw ws's`,
    acct && acctRaw ? `CPU ${f1(acct.usPerMsg)} vs ${f1(acctRaw.usPerMsg)} µs/msg (${(acct.usPerMsg / acctRaw.usPerMsg).toFixed(2)}×); p99 ${f1(acct.p99)} vs ${f1(acctRaw.p99)} ms (${(acct.p99 / acctRaw.p99).toFixed(2)}×)` : '–',
    acct && acctRaw ? acct.usPerMsg <= 1.5 * acctRaw.usPerMsg && acct.p99 <= 1.5 * acctRaw.p99 : undefined,
  );
  const storm = stormRows.find((r) => r.system === 'tradesync');
  row('a storm of 1,000 clients all synced < 1 s', storm ? `${storm.synced}/${storm.clients} in ${storm.syncedMs.toFixed(0)} ms, ${storm.recovered} recovered` : '–', storm ? storm.synced === storm.clients && storm.syncedMs < 1000 : undefined);
  const memTs = memoryRows.find((r) => r.system === 'tradesync');
  const memRaw = memoryRows.find((r) => r.system === 'raw-ws');
  row('idle memory per connection ≤ 1.5× raw ws', memTs && memRaw ? `${memTs.perConnKb.toFixed(1)} vs ${memRaw.perConnKb.toFixed(1)} KB (${(memTs.perConnKb / memRaw.perConnKb).toFixed(2)}×)` : '–', memTs && memRaw ? memTs.perConnKb <= 1.5 * memRaw.perConnKb : undefined);
  row(
    '10,000 idle connections with one subscription each held, RSS reported',
    memTs ? `${memTs.connections.toLocaleString('en-US')} held, RSS ${memTs.rssBeforeMb.toFixed(0)} → ${memTs.rssAfterMb.toFixed(0)} MB` : '–',
    memTs ? memTs.connections >= 10_000 : undefined,
  );
  const r1k = resyncRows.find((r) => r.kind.includes('1,000 missed'));
  row('one client resuming 1,000 missed events < 50 ms', r1k ? `median ${f1(r1k.medianMs)} ms (max ${f1(r1k.maxMs)})` : '–', r1k ? r1k.medianMs < 50 : undefined);
  const snap = resyncRows.find((r) => r.kind.startsWith('snapshot'));
  row('a 10,000-order snapshot served < 100 ms', snap ? `median ${f1(snap.medianMs)} ms (max ${f1(snap.maxMs)})` : '–', snap ? snap.medianMs < 100 : undefined);
  return lines.join('\n');
}

const sh = (cmd: string): string => {
  try {
    return execSync(cmd, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
};

const HOW_TO = `### How to run

\`\`\`
npm run bench              # full suite, ~6 minutes on 2 cores
npm run bench -- --quick   # ~1.5 minutes: fan-out at 300/s only, 2 s windows, 2,000 idle connections
npm run bench -- --only fanout,storm --systems tradesync,raw-ws   # a subset
npm run bench -- --quick --runs 3 --rates 100,300 --idle 10000   # what the latest results below ran: medians of 3 runs
npm run bench -- --only ingest --batches 1,100 --systems tradesync,redis   # ingest only (systems: tradesync, nats-jetstream, redis)
BENCH_CPU_PROF=/tmp/prof npm run bench -- --quick --only fanout --systems tradesync   # server CPU profile
\`\`\`

\`bench/run.ts\` starts each server in its own process on 127.0.0.1 (TradeSync: \`tradesync serve
--no-simulator --durability normal\`; peers: \`bench/peers/raw-ws-server.ts\`, \`bench/peers/socketio-server.ts\`,
and \`bench/peers/nats-peer.ts\`, which starts \`nats-server\` (from PATH) with its WebSocket listener and
JetStream on free ports and publishes what it is POSTed on each stream's subject over one TCP connection),
spreads the clients over two forked worker processes (\`bench/peers/worker.ts\`; NATS clients connect
over WebSocket with nats.js's \`wsconnect\`) and publishes from its own process over HTTP (\`POST\` of a
JSON array; every system takes the same events). NATS's CPU and memory are its broker's and its
bridge's together. Every event
carries its **scheduled** publish time (\`data.sched\`, from the start time and the rate), and receivers
record \`now − sched\` in HDR histograms, so a stall shows as latency, not as a slower schedule (no
coordinated omission). Each phase has a warm-up and a fixed window; only events scheduled inside the
window are counted. Server CPU comes from \`/proc/<pid>/stat\`, RSS from \`/proc/<pid>/status\`.
**server µs/msg** is the server's CPU time over the window ÷ messages delivered in it: unlike
throughput or latency, the load generator cannot hide it. **client workers CPU** shows whether the
clients (two processes that count frames and read \`sched\`/offsets with a byte scan, \`ws\` with
\`skipUTF8Validation\`) or the server ran out of CPU first.

### What each scenario measures

- **fan-out**: 1,000 clients on one stream (\`market:BENCH\`; peers: one room), ~300-byte \`market:tick\`
  events at each rate. Delivered msgs/s, dropped (owed − received after a 2 s drain), latency, server
  CPU. TradeSync clients also check every \`sequence_number\` is +1 and offsets have no gap or duplicate.
- **per-account**: 1,000 clients each on its own \`orders:acct-N\` stream (peers: a room per client),
  1,000 \`order:updated\` events/s spread round-robin: routing cost rather than broadcast.
- **reconnect storm** (run before the fan-out rates, on fresh connections): the 1,000 fan-out clients' sockets are all cut at once while 10 events/s flow,
  and all reconnect at once (no backoff): TradeSync resumes with \`since\` (synced = \`subscribed\` with
  \`recovered: true\`), Socket.IO with connection state recovery (\`socket.recovered\`), NATS
  JetStream (\`nats-jetstream\`: every client is an ordered consumer) with a new ordered consumer from
  the sequence after its last, synced when the messages pending then have arrived; raw ws and NATS
  core subscriptions (\`nats\`) just reopen. Time until the last client is synced, and the server's CPU meanwhile.
- **resync**: TradeSync only, one client: \`subscribe\` with \`since\` 1,000 and 10,000 events back
  (memory window vs engine read) versus a snapshot of 10,000 open orders; time to the full reply and its size.
- **memory**: server RSS before and after opening N idle connections with one subscription each, ÷ N.
- **ingest** (\`bench/ingest.ts\`): events a second each system acknowledges as stored, batches of 1, 10
  and 100, 4 requests in flight: TradeSync's \`POST /api/v1/events\` with \`durability normal\` and
  \`full\`, NATS JetStream publishes each awaiting its PubAck, Redis \`XADD\` pipelines with
  \`appendfsync everysec\` and \`always\`; the events update 20 open orders on each of 100 streams.`;

/** Hand-written notes kept across runs: from this heading to the end of our section. */
const NOTES_HEADING = '### Profile notes';

function writeDocs(section: string): void {
  const path = new URL('../docs/BENCHMARKS.md', import.meta.url).pathname;
  const heading = '## Gateway versus peers';
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\nOne section per bench script.\n';
  const at = doc.indexOf(heading);
  if (at === -1) {
    doc = `${doc.trimEnd()}\n\n${section}\n`;
  } else {
    // Replace only our section: up to the next "## " heading (another script's), keeping the notes.
    const nextAt = doc.indexOf('\n## ', at + heading.length);
    const old = doc.slice(at, nextAt === -1 ? undefined : nextAt + 1);
    const notesAt = old.indexOf(NOTES_HEADING);
    const notes = notesAt === -1 ? '' : `\n${old.slice(notesAt).trimEnd()}\n`;
    doc = doc.slice(0, at) + section + notes + (nextAt === -1 ? '' : `\n${doc.slice(nextAt + 1)}`);
  }
  writeFileSync(path, doc);
  log(`\nwrote ${path}`);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const load = loadavg();
  log(`load average ${load.map((l) => l.toFixed(2)).join(' ')}; open-file limit ${sh('ulimit -n')}${QUICK ? '; quick run' : ''}`);
  const runs: Array<{ latency: LatencyRow[]; storm: StormRow[]; resync: ResyncRow[]; memory: MemoryRow[]; ingest: IngestRow[] }> = [];
  for (let run = 1; run <= RUNS; run++) {
    if (RUNS > 1) log(`run ${run} of ${RUNS}`);
    for (const system of RUN_SYSTEMS) {
      if (ONLY.has('fanout') || ONLY.has('storm')) await fanoutAndStorm(system);
      if (ONLY.has('accounts')) await accounts(system);
      if (ONLY.has('memory')) await memory(system);
    }
    if (ONLY.has('resync') && RUN_SYSTEMS.includes('tradesync')) await resync();
    if (ONLY.has('ingest')) ingestRows = await ingest({ batches: INGEST_BATCHES, durationMs: INGEST_MS, concurrency: INGEST_IN_FLIGHT, log, execArgv: serverFlags(), ...(args.systems ? { systems: new Set(RUN_SYSTEMS) } : {}) });
    runs.push({ latency: latencyRows, storm: stormRows, resync: resyncRows, memory: memoryRows, ingest: ingestRows });
    latencyRows = [];
    stormRows = [];
    resyncRows = [];
    memoryRows = [];
    ingestRows = [];
  }
  latencyRows = medians('latency', runs.map((r) => r.latency), latencyKey);
  stormRows = medians('storm', runs.map((r) => r.storm), stormKey);
  resyncRows = medians('resync', runs.map((r) => r.resync), resyncKey);
  memoryRows = medians('memory', runs.map((r) => r.memory), memoryKey);
  ingestRows = medians('ingest', runs.map((r) => r.ingest), ingestKey);
  const loadAfter = loadavg();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const machine = [
    `- date: ${startedAt.toISOString()} (took ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s)`,
    `- command: \`${command}\``,
    `- runs: ${RUNS}${RUNS > 1 ? ' (each number is the median over the runs; where a range follows it, that is the lowest–highest)' : ''}`,
    `- machine: ${sh('nproc')} cores (\`nproc\`), ${sh("free -g | awk '/^Mem:/ {print $2}'")} GiB RAM (\`free -g\`), Node ${process.version}, Linux ${sh('uname -r')}`,
    `- load average at start ${load.map((l) => l.toFixed(2)).join(' / ')}, at end ${loadAfter.map((l) => l.toFixed(2)).join(' / ')} (other work shares this machine; 2 cores run the server, the clients and the producer together)`,
  ].join('\n');
  const results = `${tables()}\n\nTargets:\n\n${targets()}`;
  log(`\n${machine}\n\n${results}`);
  let figure = '';
  const fanout = latencyRows.filter((r) => r.scenario === 'fan-out');
  if (!args['no-docs'] && fanout.length > 0) {
    await plotLatency(
      fanout.map((r) => ({ system: r.system, rate: r.rate, p99: r.p99 })),
      new URL('../docs/bench-fanout-p99.png', import.meta.url).pathname,
      `Fan-out p99 latency by rate${RUNS > 1 ? ` (median of ${RUNS} runs)` : ''}`,
    );
    figure = '\n\n![Fan-out p99 latency by rate, every system](bench-fanout-p99.png)';
  }
  if (!args['no-docs']) writeDocs(`## Gateway versus peers\n\n${HOW_TO}\n\n### Latest results\n\n${machine}${figure}\n\n${results}\n`);
}

try {
  await main();
} finally {
  killAll();
}
