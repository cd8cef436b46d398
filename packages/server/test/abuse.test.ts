import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { http, metric, openSocket, order, publish, startGateway, TestClient } from '@tradesync/testing';
import { serveChild, type ServeChild } from '@tradesync/testing/serve';
import { TcpProxy } from '@tradesync/testing/tcp-proxy';

/**
 * Each bound the gateway keeps against a client that misbehaves, and in each case a
 * well-behaved client on the same gateway goes on being served.
 */

const tcpOf = (socket: WebSocket): Socket => (socket as unknown as { _socket: Socket })._socket;

/** A well-behaved client still gets its live events and its replies. */
async function stillServed(gwUrl: string, wsUrl: string, stream = 'orders:good'): Promise<void> {
  await using good = await TestClient.connect(wsUrl);
  await good.request('subscribe', { stream });
  const answer = await publish(gwUrl, [order(stream.slice(stream.indexOf(':') + 1))]);
  expect(answer.status).toBe(200);
  await good.next((m) => m.stream === stream && m.type === 'order:updated');
  expect((await good.request('ping')).type).toBe('pong');
}

/** Resolves to 'open' or the HTTP status that refused the upgrade. */
function upgrade(wsUrl: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<{ outcome: 'open' | number; socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, options);
    socket.once('open', () => resolve({ outcome: 'open', socket }));
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ outcome: res.statusCode ?? 0, socket });
    });
    socket.once('error', reject);
  });
}

describe('frames per second per connection', () => {
  it('drops a flood with RATE_LIMITED, closes it with 1008, and keeps serving another client meanwhile', async () => {
    await using gw = await startGateway({ limits: { messagesPerSecond: 20, messageBurst: 20 } });
    await using flood = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 500; i++) flood.send({ type: 'ping' });
    expect((await flood.closed).code).toBe(1008);
    expect(flood.messages.filter((m) => m.type === 'error' && (m.error as { code: string }).code === 'RATE_LIMITED').length).toBeGreaterThan(0);
    await stillServed(gw.url, gw.wsUrl);
  });
});

describe('connections per address', () => {
  it('refuses the upgrade past limits.max_connections_per_ip with 429, serves other addresses, and frees a slot on close', async () => {
    await using gw = await startGateway({ limits: { maxConnectionsPerIp: 5 } });
    const held: WebSocket[] = [];
    for (let i = 0; i < 5; i++) {
      const { outcome, socket } = await upgrade(gw.wsUrl);
      expect(outcome).toBe('open');
      held.push(socket);
    }
    expect((await upgrade(gw.wsUrl)).outcome).toBe(429);
    expect(await metric(gw.url, 'tradesync_requests_refused_total', { reason: 'connections_per_ip' })).toBe(1);
    // Another address on this machine (all of 127.0.0.0/8 is loopback) is not affected.
    const other = await upgrade(gw.wsUrl, { localAddress: '127.0.0.2' });
    expect(other.outcome).toBe('open');
    other.socket.close();
    held.pop()!.close();
    await vi.waitFor(async () => expect((await upgrade(gw.wsUrl)).outcome).toBe('open'), { timeout: 3000, interval: 50 });
    for (const socket of held) socket.close();
  });

  it('counts by X-Forwarded-For only when the peer is a trusted proxy', async () => {
    await using trusting = await startGateway({ limits: { maxConnectionsPerIp: 2 }, trustedProxies: ['127.0.0.1'] });
    const as = (ip: string) => upgrade(trusting.wsUrl, { headers: { 'x-forwarded-for': ip } });
    const a1 = await as('203.0.113.7');
    const a2 = await as('203.0.113.7');
    expect([a1.outcome, a2.outcome]).toEqual(['open', 'open']);
    expect((await as('203.0.113.7')).outcome).toBe(429);
    const b = await as('198.51.100.9');
    expect(b.outcome).toBe('open');
    for (const s of [a1, a2, b]) s.socket.close();

    // Without trusted proxies the header is the client's word, and ignored.
    await using plain = await startGateway({ limits: { maxConnectionsPerIp: 2 } });
    const p1 = await upgrade(plain.wsUrl, { headers: { 'x-forwarded-for': '203.0.113.1' } });
    const p2 = await upgrade(plain.wsUrl, { headers: { 'x-forwarded-for': '203.0.113.2' } });
    expect((await upgrade(plain.wsUrl, { headers: { 'x-forwarded-for': '203.0.113.3' } })).outcome).toBe(429);
    p1.socket.close();
    p2.socket.close();
  });
});

describe('subscriptions per connection', () => {
  it('answers TOO_MANY_SUBSCRIPTIONS past the limit and keeps serving that connection and others', async () => {
    await using gw = await startGateway({ limits: { maxSubscriptions: 3 } });
    await using greedy = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 3; i++) expect((await greedy.request('subscribe', { stream: `orders:a${i}` })).type).toBe('subscribed');
    const refused = await greedy.request('subscribe', { stream: 'orders:a9' });
    expect(refused).toMatchObject({ type: 'error', error: { code: 'TOO_MANY_SUBSCRIPTIONS' } });
    expect((await greedy.request('ping')).type).toBe('pong');
    await stillServed(gw.url, gw.wsUrl);
  });
});

describe('request body size on REST', () => {
  it('answers a body over limits.max_body_bytes with 413 PAYLOAD_TOO_LARGE, appends nothing, and serves the next request', async () => {
    await using gw = await startGateway({ limits: { maxBodyBytes: 4096 } });
    const big = await publish(gw.url, [order('big', { note: 'x'.repeat(8192) })]);
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ success: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect((await http(gw.url, '/api/v1/streams/orders:big/events')).body.head).toBe(0);
    await stillServed(gw.url, gw.wsUrl);
  });
});

describe('half-open TCP', () => {
  it('drops a peer that vanished without a FIN within two heartbeat intervals', async () => {
    const interval = 1500;
    await using gw = await startGateway({ heartbeat: { pingIntervalMs: interval } });
    await using proxy = await TcpProxy.start(gw.gateway.port);
    const socket = await openSocket(`ws://127.0.0.1:${proxy.port}/ws`);
    await vi.waitFor(() => expect(gw.gateway.connections.size).toBe(1));
    // Let it answer a ping or two first: it is a healthy peer until it vanishes.
    let pings = 0;
    socket.on('ping', () => pings++);
    await vi.waitFor(() => expect(pings).toBeGreaterThanOrEqual(1), { timeout: 3 * interval });
    const vanished = performance.now();
    proxy.blackhole();
    await vi.waitFor(() => expect(gw.gateway.connections.size).toBe(0), { timeout: 4 * interval, interval: 20 });
    const droppedAfter = performance.now() - vanished;
    console.warn(`half-open peer dropped ${Math.round(droppedAfter)} ms after it vanished (heartbeat interval ${interval} ms)`);
    expect(droppedAfter).toBeLessThanOrEqual(2 * interval);
    expect(await metric(gw.url, 'tradesync_heartbeat_closes_total')).toBe(1);
    socket.terminate();
  });
});

describe('POST /api/logs with auth on', () => {
  const secret = 'logs-secret-'.padEnd(32, 'x');
  const token = () => new SignJWT({ accounts: ['demo'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
  const entry = { logs: [{ level: 'warn', message: 'hello' }] };

  it('needs a token and is rate-limited per address, while the rest of the API is served', async () => {
    await using gw = await startGateway({ auth: { enabled: true, secret }, limits: { logRequestsPerMinute: 5 } });
    expect((await http(gw.url, '/api/logs', { body: entry })).status).toBe(401);
    const t = await token();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await http(gw.url, '/api/logs', { body: entry, token: t })).status);
    // The refused one above counted too: 5 requests per minute in all.
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
    const limited = await http(gw.url, '/api/logs', { body: entry, token: t });
    expect(limited.body).toMatchObject({ success: false, error: { code: 'RATE_LIMITED' } });
    expect((await http(gw.url, '/api/state/snapshot', { token: t })).status).toBe(200);
  });
});

describe('GET /metrics behind metrics_token', () => {
  it('answers 401 without the token or with a wrong one, and the metrics with it', async () => {
    await using gw = await startGateway({ metricsToken: 'scrape-me' });
    expect((await http(gw.url, '/metrics')).status).toBe(401);
    expect((await http(gw.url, '/metrics', { token: 'scrape-mf' })).status).toBe(401);
    const ok = await http(gw.url, '/metrics', { token: 'scrape-me' });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('tradesync_connections');
  });
});

/* -------------------------------------------------------------------------
 * Slow consumers, measured on a gateway in its own process (its RSS alone).
 * ----------------------------------------------------------------------- */

const servers: ServeChild[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function gatewayProcess(env: Record<string, string>): Promise<{ url: string; pid: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-abuse-'));
  dirs.push(dataDir);
  const server = await serveChild(dataDir, { env, args: ['--log-level', 'error', '--durability', 'normal'] });
  servers.push(server);
  return { url: server.url, pid: server.child.pid! };
}

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

describe('slow consumers', () => {
  it('cuts 20 clients that stop reading while 50 MB is published, keeps serving, and its RSS returns near its baseline', { timeout: 60_000 }, async () => {
    // A small in-memory window and five entities: the published data itself does not
    // stay in memory, so whatever stays is what the slow consumers cost.
    const { url, pid } = await gatewayProcess({ TRADESYNC_HISTORY__MEMORY_WINDOW: '10' });
    const wsUrl = `${url.replace(/^http/, 'ws')}/ws`;
    for (let i = 0; i < 20; i++) await publish(url, [order('firehose', { order_id: `o${i % 5}` })]);
    const baseline = rssMb(pid);

    const slow: TestClient[] = [];
    for (let i = 0; i < 20; i++) {
      const client = await TestClient.connect(wsUrl);
      await client.request('subscribe', { stream: 'orders:firehose' });
      tcpOf(client.socket).pause();
      slow.push(client);
    }
    const note = 'x'.repeat(50_000);
    let peak = baseline;
    for (let round = 0; round < 50; round++) {
      const answer = await publish(url, Array.from({ length: 20 }, () => order('firehose', { order_id: `o${round % 5}`, note })));
      expect(answer.status).toBe(200);
      peak = Math.max(peak, rssMb(pid));
    }
    await vi.waitFor(async () => expect(await metric(url, 'tradesync_slow_consumer_closes_total')).toBe(20), { timeout: 10_000, interval: 100 });
    await vi.waitFor(async () => expect((await http(url, '/api/admin/websocket/connections')).body.count).toBe(0), { timeout: 10_000, interval: 100 });
    await stillServed(url, wsUrl);

    // Each slow client could hold 8 MB (limits.max_buffered_bytes): 160 MB if each kept
    // its own copy. The frames share their event bytes, so what is held is one copy.
    let settled = rssMb(pid);
    await vi.waitFor(
      () => {
        settled = rssMb(pid);
        expect(settled - baseline).toBeLessThan(64);
      },
      { timeout: 20_000, interval: 500 },
    );
    console.warn(`slow consumers: RSS baseline ${baseline.toFixed(0)} MB, peak ${peak.toFixed(0)} MB, settled ${settled.toFixed(0)} MB`);
    for (const client of slow) client.socket.terminate();
  });
});
