/**
 * Live fan-out through a cluster of gateways sharing one Redis.
 *
 *   node --conditions=@tradesync/source --import tsx bench/fanout-cluster.ts [--clients 300] [--rate 200] [--seconds 20] [--warmup 3] [--nodes 1,2]
 *
 * For each cluster size: starts a private redis-server (free port, no persistence),
 * `tradesync serve --engine redis` N times as child processes, connects `--clients`
 * plain `ws` clients split evenly across the nodes, all subscribed to one market
 * stream, and a producer child process that POSTs one `market:tick` every 1/rate s,
 * round-robin over the nodes (as a load balancer would). Each tick carries its publish
 * time with microseconds in `data.timestamp`; each client notes when it received it.
 * After the warm-up it measures for `--seconds`: events delivered per second (all
 * clients together) and the publish → receipt latency (p50, p99, max).
 *
 * Everything shares this machine's cores (Redis, the gateways, the producer and the
 * clients), so read the numbers as relative: one node vs two.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { freePort, startRedis } from '@tradesync/testing/redis';
import { BENCH_GATEWAY_ENV } from './peers/common.js';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const SELF = new URL(import.meta.url).pathname;
const SYMBOL = 'BENCH-USD';
const STREAM = `market:${SYMBOL}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Wall-clock milliseconds with microseconds, comparable across processes on one machine. */
const nowMs = () => performance.timeOrigin + performance.now();

/** ISO time with microseconds: the producer's stamp, parsed back by the clients. */
function isoMicros(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.floor((ms - whole) * 1000);
  return `${new Date(whole).toISOString().slice(0, -1)}${String(micros).padStart(3, '0')}Z`;
}
function parseIsoMicros(iso: string): number {
  return Date.parse(`${iso.slice(0, 23)}Z`) + Number(iso.slice(23, 26)) / 1000;
}

/* ------------------------------------------------------------------ producer (child) */

async function runProducer(urls: string[], rate: number, seconds: number): Promise<void> {
  const interval = 1000 / rate;
  const start = nowMs();
  const end = start + seconds * 1000;
  let sent = 0;
  let failed = 0;
  let inFlight = 0;
  for (let k = 0; ; k++) {
    const due = start + k * interval;
    if (due > end) break;
    const wait = due - nowMs();
    if (wait > 0) await sleep(wait);
    // Fixed rate: never wait for the previous answer (bounded, so a stall cannot pile up).
    if (inFlight > 100) {
      failed++;
      continue;
    }
    inFlight++;
    const url = urls[k % urls.length]!;
    const body = JSON.stringify([{ stream: STREAM, type: 'market:tick', data: { symbol: SYMBOL, price: String(1000 + (k % 100)), timestamp: isoMicros(nowMs()) } }]);
    fetch(`${url}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then((res) => {
        if (res.status !== 200) failed++;
        else sent++;
        return res.arrayBuffer();
      })
      .catch(() => failed++)
      .finally(() => inFlight--);
  }
  while (inFlight > 0) await sleep(10);
  process.stdout.write(`${JSON.stringify({ sent, failed })}\n`);
}

/* ------------------------------------------------------------------ orchestration */

interface Result {
  readonly nodes: number;
  readonly clients: number;
  readonly published: number;
  readonly publishFailed: number;
  readonly deliveredPerSecond: number;
  readonly expectedPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function startNode(port: number, redisUrl: string, dataDir: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [...TRADESYNC_CLI, 'serve', '--engine', 'redis', '--redis-url', redisUrl, '--no-simulator', '--port', String(port), '--data-dir', dataDir, '--log-level', 'error'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...BENCH_GATEWAY_ENV } },
  );
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('TradeSync gateway on')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited early (${code})`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** The data timestamps of a frame (a single event or a batch_update): only producer stamps have microseconds. */
const STAMP = /"timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"/g;

async function runCluster(nodeCount: number, opts: { clients: number; rate: number; seconds: number; warmup: number }): Promise<Result> {
  await using redis = await startRedis();
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-bench-'));
  const nodes: ChildProcess[] = [];
  const sockets: WebSocket[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < nodeCount; i++) {
      const port = await freePort();
      ports.push(port);
      nodes.push(await startNode(port, redis.url, join(dataDir, `n${i}`)));
    }
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);

    let measuring = false;
    let delivered = 0;
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: opts.clients }, async (_, i) => {
        const ws = new WebSocket(`ws://127.0.0.1:${ports[i % nodeCount]}/ws`, { perMessageDeflate: false });
        sockets.push(ws);
        await new Promise<void>((resolve, reject) => {
          ws.once('error', reject);
          ws.on('message', (raw: Buffer) => {
            const text = raw.toString();
            if (text.includes('"type":"subscribed"')) return resolve();
            if (!measuring) return;
            const at = nowMs();
            for (const m of text.matchAll(STAMP)) {
              delivered++;
              latencies.push(at - parseIsoMicros(m[1]!));
            }
          });
          ws.once('open', () => ws.send(JSON.stringify({ id: 's', type: 'subscribe', data: { stream: STREAM } })));
        });
      }),
    );

    const producer = spawn(process.execPath, ['--conditions=@tradesync/source', '--import', 'tsx', SELF, '--producer', urls.join(','), '--rate', String(opts.rate), '--seconds', String(opts.warmup + opts.seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let producerOut = '';
    producer.stdout.on('data', (chunk: Buffer) => (producerOut += chunk.toString()));
    const producerDone = new Promise((resolve) => producer.once('exit', resolve));

    await sleep(opts.warmup * 1000);
    measuring = true;
    const started = nowMs();
    await sleep(opts.seconds * 1000);
    measuring = false;
    const elapsed = (nowMs() - started) / 1000;
    await producerDone;
    const { sent, failed } = JSON.parse(producerOut.trim() || '{"sent":0,"failed":0}') as { sent: number; failed: number };

    latencies.sort((a, b) => a - b);
    const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    return {
      nodes: nodeCount,
      clients: opts.clients,
      published: sent,
      publishFailed: failed,
      deliveredPerSecond: delivered / elapsed,
      expectedPerSecond: opts.rate * opts.clients,
      p50: pick(0.5),
      p99: pick(0.99),
      max: latencies.at(-1) ?? NaN,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    for (const node of nodes) await stopChild(node);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      producer: { type: 'string' },
      clients: { type: 'string', default: '300' },
      rate: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      nodes: { type: 'string', default: '1,2' },
    },
  });
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  if (values.producer !== undefined) {
    await runProducer(values.producer.split(','), rate, seconds);
    return;
  }
  const opts = { clients: Number(values.clients), rate, seconds, warmup: Number(values.warmup) };
  console.log(`fan-out through a Redis cluster: ${opts.clients} clients on ${STREAM}, ${rate} events/s for ${seconds} s after ${opts.warmup} s warm-up (${cpus().length} CPUs shared by everything)`);
  const results: Result[] = [];
  for (const n of values.nodes.split(',').map(Number)) {
    console.log(`… ${n} node(s)`);
    results.push(await runCluster(n, opts));
  }
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log('');
  console.log('| nodes | clients | published (failed or skipped) | delivered/s | expected/s | p50 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.nodes} | ${r.clients} | ${r.published} (${r.publishFailed}) | ${f(r.deliveredPerSecond, 0)} | ${r.expectedPerSecond} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 1)} |`,
    );
  }
}

await main();
