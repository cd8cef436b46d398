/**
 * Fault scenarios shared by test/faults.test.ts (a few rounds, in `npm test`) and
 * bench/reliability.ts (many rounds, a table for docs/RELIABILITY.md). Real processes,
 * a real redis-server, real sockets, loopback only; every wait is bounded.
 *
 * Each scenario runs producers that publish over HTTP as fast as they can, with a
 * unique id in every event's data, while a fault is injected; afterwards it reads the
 * whole log back over REST and counts:
 * - lost: acknowledged (HTTP 200) events not at their acknowledged offset and epoch;
 * - duplicated: unique ids found at more than one offset;
 * - offsets not dense (1..head without a gap) as a problem;
 * and compares client replicas (rebuilt with the one reducer from what a WebSocket
 * delivered) with the server state.
 *
 * One file on purpose: the scenarios share their producers, log reader and replica
 * checks, and the test and the bench must run exactly the same code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { applyEvents, initialState, parseStream, type StreamState } from '@tradesync/protocol';
import { startGateway, TestClient, type TestGateway } from './harness.js';
import { startRedis } from './redis.js';
import { readAllEvents, Replica, type WireEvent } from './replica.js';
import { serveChild, type ServeChild } from './serve.js';
import { TcpProxy } from './tcp-proxy.js';


export const FAULT_STREAMS = ['orders:faults', 'market:FLT-USD'] as const;

export interface FaultResult {
  readonly fault: string;
  readonly runs: number;
  /** Events answered 200. */
  readonly acknowledged: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly replicasEqual: boolean;
  /** Whether some stream got a new epoch (Redis came back with less than it acknowledged). */
  readonly epochChanged?: boolean;
  /** Everything that went wrong, human-readable (empty when all held). */
  readonly problems: string[];
  readonly ms: number;
}

export interface ScenarioOptions {
  readonly rounds: number;
  /** Called with a line of progress (for the script; tests pass nothing). */
  readonly progress?: (line: string) => void;
}

/* ------------------------------------------------------------------ producers */

let uidSeq = 0;
/** An event whose data carries an id unique in this process. */
function uniqueEvent(k: number): { uid: string; event: { stream: string; type: string; data: Record<string, unknown> } } {
  const n = ++uidSeq;
  const uid = `u${process.pid}-${n}`;
  if (k % 2 === 0) {
    return {
      uid,
      event: {
        stream: FAULT_STREAMS[0],
        type: 'order:updated',
        data: { order_id: uid, symbol: 'FLT-USD', side: 'buy', order_type: 'limit', quantity: '1', price: '10.00', filled_quantity: '0', status: 'open', session_id: 's1', created_at: new Date().toISOString() },
      },
    };
  }
  // A tick's unique id is its price (the only free field of a tick).
  return { uid: `${n}.5`, event: { stream: FAULT_STREAMS[1], type: 'market:tick', data: { symbol: 'FLT-USD', price: `${n}.5`, timestamp: new Date().toISOString() } } };
}
const uidOf = (e: WireEvent): string => String(e.data['order_id'] ?? e.data['price']);

interface AckedEvent {
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
  readonly uid: string;
}

interface Producer {
  readonly acked: AckedEvent[];
  /** Requests that failed (refused, 503, connection lost): not acknowledged. */
  readonly failed: number;
  stop(): Promise<void>;
}

/**
 * `loops` concurrent producers POSTing batches of 1–4 events to `target()` as fast as
 * the server answers. A failure (503, a dead server) is not an acknowledgement; with
 * `persist` the loop pauses a little and goes on, otherwise it ends.
 */
function produce(target: () => string, loops: number, persist: boolean): Producer {
  const acked: AckedEvent[] = [];
  let failed = 0;
  let running = true;
  const loop = async (p: number) => {
    for (let round = 0; running; round++) {
      const made = Array.from({ length: 1 + ((round + p) % 4) }, (_, k) => uniqueEvent(round + k + p));
      let ok = false;
      try {
        const res = await fetch(`${target()}/api/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(made.map((m) => m.event)),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.status === 200) {
          const body = (await res.json()) as { offsets: Array<{ stream: string; epoch: string; offset: number }> };
          body.offsets.forEach((o, i) => acked.push({ stream: o.stream, epoch: o.epoch, offset: o.offset, uid: made[i]!.uid }));
          ok = true;
        } else {
          await res.body?.cancel();
        }
      } catch {
        // Not answered: not acknowledged (it may be stored all the same).
      }
      if (!ok) {
        failed++;
        if (!persist) return;
        await sleep(10);
      }
    }
  };
  const all = Promise.all(Array.from({ length: loops }, (_, p) => loop(p)));
  return {
    acked,
    get failed() {
      return failed;
    },
    async stop() {
      running = false;
      await all;
    },
  };
}

/* ------------------------------------------------------------------ checks */

interface LogCheck {
  lost: number;
  duplicated: number;
  problems: string[];
  /** Whether a stream's epoch changed since some acknowledgement (its history was declared lost). */
  epochChanged: boolean;
  logs: Map<string, { epoch: string; head: number; events: WireEvent[] }>;
}

/** Reads every stream's whole log from `url` and checks every acknowledged event against it. */
async function checkLog(url: string, acked: readonly AckedEvent[]): Promise<LogCheck> {
  const logs = new Map<string, { epoch: string; head: number; events: WireEvent[] }>();
  const problems: string[] = [];
  let duplicated = 0;
  for (const stream of FAULT_STREAMS) {
    const log = await readAllEvents(url, stream);
    logs.set(stream, log);
    const offsets = log.events.map((e) => e.offset);
    const dense = offsets.length === log.head && offsets.every((o, k) => o === k + 1);
    if (!dense) problems.push(`${stream}: offsets are not dense 1..${log.head} (${offsets.length} events, first ${offsets[0]}, last ${offsets.at(-1)})`);
    const seen = new Map<string, number>();
    for (const e of log.events) seen.set(uidOf(e), (seen.get(uidOf(e)) ?? 0) + 1);
    for (const [uid, n] of seen) {
      if (n > 1) {
        duplicated += n - 1;
        if (duplicated <= 5) problems.push(`${stream}: ${uid} stored ${n} times`);
      }
    }
  }
  let lost = 0;
  let moved = 0;
  const where = new Map<string, WireEvent>();
  for (const log of logs.values()) for (const e of log.events) where.set(uidOf(e), e);
  for (const a of acked) {
    const log = logs.get(a.stream)!;
    const at = where.get(a.uid);
    if (!at) {
      lost++;
      if (lost <= 5) problems.push(`lost: ${a.stream} ${a.epoch}/${a.offset} (${a.uid}); log epoch ${log.epoch}, head ${log.head}`);
    } else if (at.offset !== a.offset) {
      // Another offset in the same epoch would be a silent rewrite of history.
      if (log.epoch === a.epoch && ++moved <= 5) problems.push(`moved: ${a.stream} ${a.epoch}/${a.offset} (${a.uid}) is at offset ${at.offset}`);
    }
  }
  const epochChanged = acked.some((a) => logs.get(a.stream)!.epoch !== a.epoch);
  return { lost, duplicated, problems, logs, epochChanged };
}

const reduce = (stream: string, events: readonly WireEvent[]): StreamState => applyEvents(initialState(parseStream(stream)!.kind), events);

/** Subscribes a replica on a fresh connection, resuming from where it was. */
async function attachReplica(replica: Replica, wsUrl: string): Promise<TestClient> {
  const client = await TestClient.connect(wsUrl);
  replica.attach(client);
  for (const stream of FAULT_STREAMS) {
    const since = replica.since(stream);
    await client.request('subscribe', since ? { stream, since } : { stream }, 10_000);
  }
  replica.consume();
  return client;
}

/** Waits until the replica holds `head` of every stream; false when it did not within the time. */
async function replicaReaches(replica: Replica, logs: LogCheck['logs'], timeoutMs = 20_000): Promise<boolean> {
  return waitFor(() => {
    replica.consume();
    return FAULT_STREAMS.every((s) => replica.streams.get(s)?.offset === logs.get(s)!.head);
  }, timeoutMs);
}

/** Compares a replica with the log reduced by the one reducer; returns the differences. */
function compareReplica(name: string, replica: Replica, logs: LogCheck['logs']): string[] {
  const out = replica.problems.map((p) => `${name}: ${p}`);
  for (const stream of FAULT_STREAMS) {
    const log = logs.get(stream)!;
    const mine = replica.streams.get(stream);
    if (!mine) out.push(`${name}: ${stream} never subscribed`);
    else if (mine.epoch !== log.epoch || mine.offset !== log.head) out.push(`${name}: ${stream} at ${mine.epoch}/${mine.offset}, server at ${log.epoch}/${log.head}`);
    else if (!isDeepStrictEqual(mine.state, reduce(stream, log.events))) out.push(`${name}: ${stream} state differs from the server's`);
  }
  return out;
}

/** Compares an in-process node's state with the log. */
async function compareNode(name: string, node: TestGateway, logs: LogCheck['logs']): Promise<string[]> {
  const out: string[] = [];
  for (const stream of FAULT_STREAMS) {
    const log = logs.get(stream)!;
    const reached = await waitFor(() => node.gateway.store.get(stream)?.head === log.head && node.gateway.store.get(stream)?.epoch === log.epoch, 20_000);
    if (!reached) out.push(`${name}: ${stream} store at ${node.gateway.store.get(stream)?.head}, log head ${log.head}`);
    else if (!isDeepStrictEqual(node.gateway.store.get(stream)?.state, reduce(stream, log.events))) out.push(`${name}: ${stream} store state differs from the log`);
  }
  return out;
}

/* ------------------------------------------------------------------ a. kill -9 of the gateway */

async function killChild(server: ServeChild | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGKILL');
  await server.exited;
}

/**
 * kill -9 of an embedded-engine gateway (a `tradesync serve` child process) while
 * producers publish; restarted on the same data dir each round. After every restart the
 * whole log is checked, and a client replica resumes (from its last offset) on the new
 * process and must equal the log.
 */
export async function gatewayKillRounds(options: ScenarioOptions & { producers?: number }): Promise<FaultResult> {
  const started = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-faults-'));
  const acked: AckedEvent[] = [];
  const problems: string[] = [];
  let last: LogCheck | undefined;
  let replicasEqual = true;
  let server: ServeChild | undefined;
  let client: TestClient | undefined;
  const replica = new Replica();
  try {
    server = await serveChild(dataDir);
    client = await attachReplica(replica, server.wsUrl);
    for (let round = 1; round <= options.rounds; round++) {
      const producer = produce(() => server!.url, options.producers ?? 4, false);
      const target = 100 + Math.floor(Math.random() * 300);
      if (!(await waitFor(() => producer.acked.length >= target, 30_000))) problems.push(`round ${round}: only ${producer.acked.length} events acknowledged in 30 s`);
      // The producers are mid-flight when the process dies.
      await sleep(Math.random() * 50);
      await killChild(server);
      await producer.stop();
      acked.push(...producer.acked);
      replica.consume();
      await client[Symbol.asyncDispose]();

      server = await serveChild(dataDir);
      last = await checkLog(server.url, acked);
      problems.push(...last.problems.map((p) => `round ${round}: ${p}`));
      if (last.problems.length > 0 && problems.length > 50) break;
      client = await attachReplica(replica, server.wsUrl);
      const reached = await replicaReaches(replica, last.logs);
      const diff = compareReplica('replica', replica, last.logs);
      if (!reached || diff.length > 0) {
        replicasEqual = false;
        problems.push(...diff.map((p) => `round ${round}: ${p}`));
      }
      options.progress?.(`kill -9 gateway: round ${round}/${options.rounds}, ${acked.length} acknowledged, lost ${last.lost}, duplicated ${last.duplicated}`);
    }
  } finally {
    await client?.[Symbol.asyncDispose]().catch(() => undefined);
    await killChild(server);
    rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    fault: 'kill -9 of the gateway (embedded engine) under load',
    runs: options.rounds,
    acknowledged: acked.length,
    lost: last?.lost ?? 0,
    duplicated: last?.duplicated ?? 0,
    replicasEqual,
    problems,
    ms: Date.now() - started,
  };
}

/* ------------------------------------------------------------------ b. SIGKILL of Redis */

/**
 * SIGKILL of redis-server (`appendonly yes`, `appendfsync everysec`) while producers
 * publish through a gateway node; restarted on the same port and data dir. Afterwards
 * nothing acknowledged is missing and a subscribed client's replica equals the node.
 */
export async function redisKillRounds(options: ScenarioOptions & { downMs?: number; appendfsync?: 'everysec' | 'always' }): Promise<FaultResult> {
  const started = Date.now();
  const appendfsync = options.appendfsync ?? 'everysec';
  await using redis = await startRedis({ appendonly: true, appendfsync });
  const durability = appendfsync === 'always' ? 'fsync' : 'aof';
  await using node = await startGateway({ engine: 'redis', redisUrl: redis.url, redis: { durability, waitReplicas: 0 } });
  const replica = new Replica();
  await using client = await attachReplica(replica, node.wsUrl);
  const producer = produce(() => node.url, 3, true);
  const problems: string[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const before = producer.acked.length;
      if (!(await waitFor(() => producer.acked.length >= before + 200, 30_000))) problems.push(`round ${round}: no progress before the kill`);
      await redis.kill();
      await sleep(options.downMs ?? 300);
      await redis.restart({ keepData: true });
      const after = producer.acked.length;
      if (!(await waitFor(() => producer.acked.length >= after + 50, 30_000))) problems.push(`round ${round}: publishes did not resume within 30 s of the restart`);
      options.progress?.(`SIGKILL redis: round ${round}/${options.rounds}, ${producer.acked.length} acknowledged, ${producer.failed} refused`);
    }
  } finally {
    await producer.stop();
  }
  const check = await checkLog(node.url, producer.acked);
  problems.push(...check.problems);
  const reached = await replicaReaches(replica, check.logs);
  const diff = [...compareReplica('replica', replica, check.logs), ...(await compareNode('node', node, check.logs))];
  problems.push(...diff);
  void client;
  return {
    fault: `SIGKILL of redis-server (appendonly yes, appendfsync ${appendfsync}), restarted on its data dir`,
    runs: options.rounds,
    acknowledged: producer.acked.length,
    lost: check.lost,
    duplicated: check.duplicated,
    replicasEqual: reached && diff.length === 0,
    epochChanged: check.epochChanged,
    problems,
    ms: Date.now() - started,
  };
}

/* ------------------------------------------------------------------ c. network cuts */

/**
 * A network fault between gateway node A and Redis (A's redis_url points at a TcpProxy):
 * `blackhole` (no bytes either way, no FIN, for `blackholeMs`) then heal, or `cut`
 * (every connection reset). Producers publish on A and on node B (connected directly).
 * Afterwards nothing acknowledged is missing, and replicas on A and on B, and both
 * nodes, equal the log.
 */
export async function networkFaultRounds(options: ScenarioOptions & { mode: 'blackhole' | 'cut'; blackholeMs?: number }): Promise<FaultResult> {
  const started = Date.now();
  await using redis = await startRedis({ appendonly: true, appendfsync: 'always' });
  await using proxy = await TcpProxy.start(redis.port);
  await using a = await startGateway({ engine: 'redis', redisUrl: `redis://127.0.0.1:${proxy.port}` });
  await using b = await startGateway({ engine: 'redis', redisUrl: redis.url });
  const onA = new Replica();
  const onB = new Replica();
  await using clientA = await attachReplica(onA, a.wsUrl);
  await using clientB = await attachReplica(onB, b.wsUrl);
  const viaA = produce(() => a.url, 2, true);
  const viaB = produce(() => b.url, 1, true);
  const problems: string[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const before = viaA.acked.length;
      if (!(await waitFor(() => viaA.acked.length >= before + 200, 30_000))) problems.push(`round ${round}: no progress on A before the fault`);
      if (options.mode === 'blackhole') {
        proxy.blackhole();
        await sleep(options.blackholeMs ?? 3000);
        proxy.heal();
      } else {
        proxy.cut();
      }
      const after = viaA.acked.length;
      if (!(await waitFor(() => viaA.acked.length >= after + 50, 30_000))) problems.push(`round ${round}: publishes on A did not resume within 30 s`);
      options.progress?.(`network ${options.mode}: round ${round}/${options.rounds}, ${viaA.acked.length + viaB.acked.length} acknowledged, ${viaA.failed} refused on A`);
    }
  } finally {
    await Promise.all([viaA.stop(), viaB.stop()]);
  }
  const acked = [...viaA.acked, ...viaB.acked];
  const check = await checkLog(b.url, acked);
  problems.push(...check.problems);
  const reachedA = await replicaReaches(onA, check.logs);
  const reachedB = await replicaReaches(onB, check.logs);
  const diff = [
    ...compareReplica('replica on A', onA, check.logs),
    ...compareReplica('replica on B', onB, check.logs),
    ...(await compareNode('node A', a, check.logs)),
    ...(await compareNode('node B', b, check.logs)),
  ];
  problems.push(...diff);
  void clientA;
  void clientB;
  return {
    fault:
      options.mode === 'blackhole'
        ? `network blackhole gateway↔Redis for ${(options.blackholeMs ?? 3000) / 1000} s, then heal`
        : 'network cut gateway↔Redis (every connection reset)',
    runs: options.rounds,
    acknowledged: acked.length,
    lost: check.lost,
    duplicated: check.duplicated,
    replicasEqual: reachedA && reachedB && diff.length === 0,
    problems,
    ms: Date.now() - started,
  };
}

/* ------------------------------------------------------------------ helpers */

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 10 ms; resolves whether it held within `timeoutMs`. */
async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (condition()) return true;
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
}
