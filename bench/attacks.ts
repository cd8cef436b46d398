/**
 * The attacks of docs/RELIABILITY.md with counts and timings: each against a real
 * gateway on loopback, bounded in count and time, printed as a markdown table.
 *
 *   node --conditions=@tradesync/source --import tsx bench/attacks.ts                     # every attack
 *   node --conditions=@tradesync/source --import tsx bench/attacks.ts --only origin,per-ip,expiry,half-open,slow
 *   node --conditions=@tradesync/source --import tsx bench/attacks.ts --only half-open --ping-interval 30   # the default interval (about a minute)
 *
 * (Fuzzing and the auth matrix are tests: packages/server/test/fuzz.property.test.ts
 * and auth-matrix.test.ts.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { metric, order, publish, startGateway, TestClient } from '@tradesync/testing';
import { serveChild } from '@tradesync/testing/serve';
import { TcpProxy } from '@tradesync/testing/tcp-proxy';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'origin,per-ip,expiry,half-open,slow' },
    'ping-interval': { type: 'string', default: '2' },
  },
});
const ONLY = new Set(args.only.split(','));
const base = 'node --conditions=@tradesync/source --import tsx bench/attacks.ts';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Row {
  readonly attack: string;
  readonly runs: number;
  readonly expected: string;
  readonly happened: string;
  readonly ok: boolean;
  readonly command: string;
}
const rows: Row[] = [];

/** Resolves to 'open' or the HTTP status that refused the upgrade. */
function upgrade(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<{ outcome: 'open' | number; socket: WebSocket }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, options);
    socket.once('open', () => resolve({ outcome: 'open', socket }));
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ outcome: res.statusCode ?? 0, socket });
    });
    socket.once('error', () => resolve({ outcome: 0, socket }));
  });
}

if (ONLY.has('origin')) {
  progress('origin: upgrades and commands from a foreign page');
  const received: string[] = [];
  const commands = { actions: ['place_order'], handle: async (c: { action: string }) => (received.push(c.action), { success: true, result: {} }) };
  await using gw = await startGateway({}, { commands });
  const N = 200;
  let refused = 0;
  for (let i = 0; i < N; i++) {
    const { outcome, socket } = await upgrade(gw.wsUrl, { origin: i % 2 === 0 ? 'http://evil.example' : `http://127.0.0.1:${gw.gateway.port + 1}` });
    if (outcome === 403) refused++;
    socket.terminate();
  }
  let restRefused = 0;
  for (let i = 0; i < N; i++) {
    const res = await fetch(`${gw.url}/api/v1/commands`, { method: 'POST', headers: { origin: 'http://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ action: 'place_order' }) });
    if (res.status === 403) restRefused++;
  }
  rows.push({
    attack: 'a page of a foreign origin opens the WebSocket / POSTs a command',
    runs: 2 * N,
    expected: '403 at the upgrade, 403 ORIGIN_NOT_ALLOWED on REST, no command run',
    happened: `upgrades refused ${refused}/${N}, POSTs refused ${restRefused}/${N}, commands run ${received.length}`,
    ok: refused === N && restRefused === N && received.length === 0,
    command: `${base} --only origin`,
  });
}

if (ONLY.has('per-ip')) {
  progress('per-ip: 3,000 sockets from one address');
  await using gw = await startGateway({ limits: { maxConnections: 20_000 } });
  const N = 3000;
  const sockets: WebSocket[] = [];
  const outcomes = new Map<string, number>();
  for (let i = 0; i < N; i += 100) {
    const batch = await Promise.all(Array.from({ length: 100 }, () => upgrade(gw.wsUrl)));
    for (const { outcome, socket } of batch) {
      outcomes.set(String(outcome), (outcomes.get(String(outcome)) ?? 0) + 1);
      sockets.push(socket);
    }
  }
  const other = await upgrade(gw.wsUrl, { localAddress: '127.0.0.2' });
  const accepted = outcomes.get('open') ?? 0;
  rows.push({
    attack: 'one address opens 3,000 WebSockets',
    runs: N,
    expected: `at most limits.max_connections_per_ip (256) accepted, the rest 429; other addresses served`,
    happened: `accepted ${accepted}, refused 429: ${outcomes.get('429') ?? 0}; another address: ${other.outcome}`,
    ok: accepted === 256 && other.outcome === 'open',
    command: `${base} --only per-ip`,
  });
  for (const s of [...sockets, other.socket]) s.terminate();
}

if (ONLY.has('expiry')) {
  progress('expiry: tokens that expire while connected');
  const secret = 'attack-bench-secret'.padEnd(32, '-');
  await using gw = await startGateway({ auth: { enabled: true, secret } });
  const lateness: number[] = [];
  let servedAfter = 0;
  const N = 5;
  for (let i = 0; i < N; i++) {
    const exp = Math.ceil(Date.now() / 1000) + 2;
    const token = await new SignJWT({ accounts: ['demo'], trade: true }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    const client = await TestClient.connect(`${gw.wsUrl}?token=${token}`);
    await client.request('subscribe', { stream: 'orders:demo' });
    const timer = setInterval(() => client.send({ id: `late-${Date.now()}`, type: 'state_sync_request' }), 50);
    const { code } = await client.closed;
    const closedAt = Date.now();
    clearInterval(timer);
    servedAfter += client.messages.filter((m) => m.type === 'state_sync_response' && Date.parse(String(m.timestamp)) >= exp * 1000).length;
    lateness.push(code === 4101 ? closedAt - exp * 1000 : Number.NaN);
  }
  rows.push({
    attack: 'a token expires while its connection sends requests every 50 ms',
    runs: N,
    expected: 'closed with 4101 within 1 s of exp, nothing served after exp',
    happened: `4101 after exp by ${lateness.map((ms) => `${ms} ms`).join(', ')}; replies after exp: ${servedAfter}`,
    ok: lateness.every((ms) => ms >= -50 && ms <= 1000) && servedAfter === 0,
    command: `${base} --only expiry`,
  });
}

if (ONLY.has('half-open')) {
  const intervalMs = Number(args['ping-interval']) * 1000;
  progress(`half-open: peers that vanish without a FIN, heartbeat ${intervalMs} ms`);
  await using gw = await startGateway({ heartbeat: { pingIntervalMs: intervalMs } });
  await using proxy = await TcpProxy.start(gw.gateway.port);
  const N = 5;
  const peers: WebSocket[] = [];
  for (let i = 0; i < N; i++) {
    const { socket } = await upgrade(`ws://127.0.0.1:${proxy.port}/ws`);
    peers.push(socket);
  }
  // Healthy for a while (they answer pings), then every one vanishes at once.
  await sleep(intervalMs * 1.3);
  const vanished = performance.now();
  proxy.blackhole();
  while (gw.gateway.connections.size > 0 && performance.now() - vanished < 4 * intervalMs) await sleep(10);
  const after = Math.round(performance.now() - vanished);
  rows.push({
    attack: `${N} peers vanish without a FIN (heartbeat ${intervalMs / 1000} s)`,
    runs: N,
    expected: `dropped within two intervals (${(2 * intervalMs) / 1000} s)`,
    happened: `all dropped ${(after / 1000).toFixed(2)} s after they vanished; heartbeat closes ${await metric(gw.url, 'tradesync_heartbeat_closes_total')}`,
    ok: gw.gateway.connections.size === 0 && after <= 2 * intervalMs,
    command: `${base} --only half-open --ping-interval ${intervalMs / 1000}`,
  });
  for (const p of peers) p.terminate();
}

if (ONLY.has('slow')) {
  progress('slow: 20 clients stop reading while 50 MB is published');
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-attacks-'));
  const server = await serveChild(dataDir, { env: { TRADESYNC_HISTORY__MEMORY_WINDOW: '10' }, args: ['--log-level', 'error', '--durability', 'normal'] });
  const { child, url } = server;
  try {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024;
    for (let i = 0; i < 20; i++) await publish(url, [order('firehose', { order_id: `o${i % 5}` })]);
    await sleep(1000);
    const baseline = rss();
    const slow: TestClient[] = [];
    for (let i = 0; i < 20; i++) {
      const client = await TestClient.connect(`${url.replace(/^http/, 'ws')}/ws`);
      await client.request('subscribe', { stream: 'orders:firehose' });
      (client.socket as unknown as { _socket: Socket })._socket.pause();
      slow.push(client);
    }
    const note = 'x'.repeat(50_000);
    let peak = baseline;
    for (let round = 0; round < 50; round++) {
      await publish(url, Array.from({ length: 20 }, () => order('firehose', { order_id: `o${round % 5}`, note })));
      peak = Math.max(peak, rss());
    }
    const cut = await metric(url, 'tradesync_slow_consumer_closes_total');
    await sleep(15_000);
    const later = rss();
    rows.push({
      attack: '20 clients stop reading while 50 MB is published',
      runs: 20,
      expected: 'each cut with 4008 at 8 MB buffered; server RSS back near its baseline',
      happened: `cut ${cut}/20; RSS ${baseline.toFixed(0)} → peak ${peak.toFixed(0)} → ${later.toFixed(0)} MB 15 s later`,
      ok: cut === 20 && later - baseline < 64,
      command: `${base} --only slow`,
    });
    for (const client of slow) client.socket.terminate();
  } finally {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const table = [
  '| attack | runs | expected | what happened | held | command |',
  '|---|---:|---|---|---|---|',
  ...rows.map((r) => `| ${r.attack} | ${r.runs} | ${r.expected} | ${r.happened} | ${r.ok ? 'yes' : 'NO'} | \`${r.command}\` |`),
];
process.stdout.write(`${table.join('\n')}\n`);
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
