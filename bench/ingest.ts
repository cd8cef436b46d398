/**
 * Ingest: how many events a second each system accepts AND acknowledges as stored, per
 * batch size, on the same machine. A fixed number of requests is kept in flight for a
 * fixed time; an event counts once its acknowledgement arrived.
 *
 * - TradeSync: `POST /api/v1/events` with arrays of N events; the 200 comes once they are
 *   durable (`--durability normal`: SQLite WAL with `synchronous=NORMAL`; `full`: fsync per append).
 * - NATS JetStream: N `js.publish` calls awaited together, each answered by its PubAck
 *   (file storage; the broker flushes to disk on its own schedule, like `normal`).
 * - Redis Streams: a pipeline of N `XADD`s (`appendfsync everysec` or `always`).
 *
 * Run by `bench/run.ts` (`--only ingest`); loopback only, every server started here.
 */
import { Agent, request } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { startRedis } from '@tradesync/testing/redis';
import { cpuMs, cpuMsOf, newHistogram, now } from './peers/common.js';
import { order } from './peers/producer.js';
import { startServer } from './peers/servers.js';

export interface IngestRow {
  readonly system: string;
  readonly durability: string;
  readonly batch: number;
  readonly eventsPerSec: number;
  /** Request (batch) acknowledgement latency, ms. */
  readonly p50: number;
  readonly p99: number;
  /** Server CPU time per acknowledged event (µs); NaN when unknown. */
  readonly usPerEvent: number;
  readonly failed: number;
}

export interface IngestOptions {
  readonly batches: readonly number[];
  readonly durationMs: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  readonly log: (line: string) => void;
  /** Node flags for the gateway's process (a CPU profile: see BENCH_CPU_PROF in run.ts). */
  readonly execArgv?: readonly string[];
  /** Which systems to run (default all). */
  readonly systems?: ReadonlySet<string>;
}

/** Streams the events are spread over (as a desk's orders are over accounts). */
const STREAMS = 100;
/** Open orders per stream that the events keep updating (fills, amendments), as a desk's do. */
const ORDERS_PER_STREAM = 20;
const event = (i: number) => order(`orders:ingest-${i % STREAMS}`, `o-${Math.floor(i / STREAMS) % ORDERS_PER_STREAM}`, now());

/** Keeps `concurrency` sends in flight until the time is up; each send carries `batch` events. */
async function drive(options: IngestOptions, batch: number, send: (first: number) => Promise<boolean>, cpu: () => number) {
  const histogram = newHistogram();
  let acked = 0;
  let failed = 0;
  let next = 0;
  const started = now();
  const deadline = started + options.durationMs;
  const cpu0 = cpu();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (now() < deadline) {
        const first = next;
        next += batch;
        const t0 = now();
        const ok = await send(first).catch(() => false);
        histogram.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
        if (ok) acked += batch;
        else failed += batch;
      }
    }),
  );
  const seconds = (now() - started) / 1000;
  const used = cpu() - cpu0;
  return {
    eventsPerSec: acked / seconds,
    p50: histogram.getValueAtPercentile(50) / 1000,
    p99: histogram.getValueAtPercentile(99) / 1000,
    usPerEvent: acked > 0 && Number.isFinite(used) ? (used * 1000) / acked : Number.NaN,
    failed,
  };
}

async function tradesync(options: IngestOptions, durability: 'normal' | 'full'): Promise<IngestRow[]> {
  const server = await startServer('tradesync', { serveArgs: ['--durability', durability], ...(options.execArgv ? { execArgv: options.execArgv } : {}) });
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const rows: IngestRow[] = [];
  try {
    for (const batch of options.batches) {
      const post = (first: number) =>
        new Promise<boolean>((resolve) => {
          const body = JSON.stringify(Array.from({ length: batch }, (_, k) => event(first + k)));
          const req = request(
            { host: '127.0.0.1', port: server.port, path: server.publishPath, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode === 200));
            },
          );
          req.on('error', () => resolve(false));
          req.end(body);
        });
      rows.push({ system: 'tradesync', durability, batch, ...(await drive(options, batch, post, () => cpuMsOf(server.pids))) });
    }
  } finally {
    agent.destroy();
    await server.stop();
  }
  return rows;
}

async function natsJetStream(options: IngestOptions): Promise<IngestRow[]> {
  const server = await startServer('nats');
  const nc = await connect({ servers: `127.0.0.1:${server.brokerPort}` });
  const js = jetstream(nc);
  const encoder = new TextEncoder();
  const rows: IngestRow[] = [];
  // The broker alone does the work here (the bridge takes no requests).
  const broker = server.pids.at(-1)!;
  try {
    for (const batch of options.batches) {
      const publish = async (first: number) => {
        const acks = await Promise.all(Array.from({ length: batch }, (_, k) => js.publish(`bench.orders.ingest-${(first + k) % STREAMS}`, encoder.encode(JSON.stringify(event(first + k))))));
        return acks.every((ack) => ack.seq > 0);
      };
      rows.push({ system: 'nats-jetstream', durability: 'file storage', batch, ...(await drive(options, batch, publish, () => cpuMs(broker))) });
    }
  } finally {
    await nc.close();
    await server.stop();
  }
  return rows;
}

async function redisStreams(options: IngestOptions, appendfsync: 'everysec' | 'always'): Promise<IngestRow[]> {
  const redis = await startRedis({ appendfsync });
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await client.connect();
  const rows: IngestRow[] = [];
  try {
    for (const batch of options.batches) {
      const xadd = async (first: number) => {
        const pipeline = client.pipeline();
        for (let k = 0; k < batch; k++) pipeline.xadd(`orders:ingest-${(first + k) % STREAMS}`, '*', 'event', JSON.stringify(event(first + k)));
        const results = (await pipeline.exec()) ?? [];
        return results.every(([err]) => err === null);
      };
      const pid = redis.pid;
      rows.push({ system: 'redis XADD', durability: `appendfsync ${appendfsync}`, batch, ...(await drive(options, batch, xadd, () => (pid === undefined ? Number.NaN : cpuMs(pid)))) });
    }
  } finally {
    client.disconnect();
    await redis[Symbol.asyncDispose]();
  }
  return rows;
}

export async function ingest(options: IngestOptions): Promise<IngestRow[]> {
  const rows: IngestRow[] = [];
  const note = (more: IngestRow[]) => {
    for (const r of more) options.log(`  ingest ${r.system} (${r.durability}) batch ${r.batch}: ${Math.round(r.eventsPerSec)} events/s acknowledged, p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms, ${r.usPerEvent.toFixed(1)} µs/event`);
    rows.push(...more);
  };
  const run = (system: string) => !options.systems || options.systems.has(system);
  if (run('tradesync')) {
    note(await tradesync(options, 'normal'));
    note(await tradesync(options, 'full'));
  }
  if (run('nats-jetstream')) note(await natsJetStream(options));
  if (run('redis')) {
    note(await redisStreams(options, 'everysec'));
    note(await redisStreams(options, 'always'));
  }
  return rows;
}
