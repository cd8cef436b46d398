import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { http, metric, openSocket, order, publish, startGateway, TestClient } from '@tradesync/testing';

/** The TCP socket under a `ws` client: pausing it stops reading, so the server's send buffer fills. */
const tcpOf = (socket: WebSocket): Socket => (socket as unknown as { _socket: Socket })._socket;

const adminConnections = async (url: string) =>
  (await http(url, '/api/admin/websocket/connections')).body as { count: number; connections: Array<{ connection_id: string }> };

describe('heartbeats', () => {
  // 200 ms rather than less: the server checks the deadline before reading pongs that
  // arrived during an event-loop stall, so a busy test machine must not look like a dead peer.
  it('pings every client and keeps one that answers with pongs connected for more than three intervals', async () => {
    await using gw = await startGateway({ heartbeat: { pingIntervalMs: 200 } });
    await using client = await TestClient.connect(gw.wsUrl);
    let pings = 0;
    client.socket.on('ping', () => pings++);
    await vi.waitFor(() => expect(pings).toBeGreaterThanOrEqual(4), { timeout: 4000, interval: 50 });
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
    expect((await client.request('ping')).type).toBe('pong');
    expect((await adminConnections(gw.url)).count).toBe(1);
  });

  it('terminates a client that never answers pings after at most two unanswered pings', async () => {
    await using gw = await startGateway({ heartbeat: { pingIntervalMs: 150 } });
    const socket = await openSocket(gw.wsUrl, { autoPong: false });
    let pings = 0;
    socket.on('ping', () => pings++);
    const closed = await new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    // Closed with 4000 (a peer that still reads learns why); a truly dead one is
    // terminated once the closing handshake times out.
    expect(closed).toBe(4000);
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(pings).toBeLessThanOrEqual(3);
    await vi.waitFor(async () => expect((await adminConnections(gw.url)).count).toBe(0));
    expect(await metric(gw.url, 'tradesync_connections')).toBe(0);
  });

  it('keeps a client that sends messages but no pongs, since any traffic shows it is alive', async () => {
    await using gw = await startGateway({ heartbeat: { pingIntervalMs: 200 } });
    const socket = await openSocket(gw.wsUrl, { autoPong: false });
    let pings = 0;
    let closed = false;
    socket.on('ping', () => {
      pings++;
      socket.send(JSON.stringify({ type: 'ping' }));
    });
    socket.on('close', () => (closed = true));
    await vi.waitFor(() => expect(pings).toBeGreaterThanOrEqual(5), { timeout: 4000, interval: 50 });
    expect(closed).toBe(false);
    socket.close();
  });
});

describe('slow consumers', () => {
  it('closes a client whose send buffer passes maxBufferedBytes, frees it, and keeps serving a fast client', async () => {
    await using gw = await startGateway({ limits: { maxBufferedBytes: 64 * 1024 } });
    await using fast = await TestClient.connect(gw.wsUrl);
    await fast.request('subscribe', { stream: 'orders:firehose' });
    const slow = await TestClient.connect(gw.wsUrl);
    const slowId = slow.messages[0]!.connection_id as string;
    await slow.request('subscribe', { stream: 'orders:firehose' });
    tcpOf(slow.socket).pause();

    // ~1 MB per request; the kernel's socket buffers absorb a few MB before ws starts buffering.
    const note = 'x'.repeat(50_000);
    let published = 0;
    for (let round = 0; round < 60 && (await metric(gw.url, 'tradesync_slow_consumer_closes_total')) === 0; round++) {
      const answer = await publish(gw.url, Array.from({ length: 20 }, () => order('firehose', { note })));
      expect(answer.status).toBe(200);
      published += 20;
    }
    expect(await metric(gw.url, 'tradesync_slow_consumer_closes_total')).toBe(1);

    // The slow connection is cut off (after the close grace period) and no longer held by the server.
    await vi.waitFor(async () => expect((await adminConnections(gw.url)).connections.map((c) => c.connection_id)).not.toContain(slowId), {
      timeout: 5000,
      interval: 100,
    });
    expect(await metric(gw.url, 'tradesync_connections')).toBe(1);

    // The fast client got every event, in order.
    await vi.waitFor(() => expect(fast.events('orders:firehose')).toHaveLength(published), { timeout: 5000 });
    expect(fast.events('orders:firehose').map((e) => e.offset)).toEqual(Array.from({ length: published }, (_, i) => i + 1));
    slow.socket.terminate();
  });
});

describe('connection limit', () => {
  it('refuses a WebSocket upgrade beyond maxConnections with HTTP 503 and accepts again once a slot frees', async () => {
    await using gw = await startGateway({ limits: { maxConnections: 2 } });
    await using a = await TestClient.connect(gw.wsUrl);
    await using _b = await TestClient.connect(gw.wsUrl);
    const status = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(gw.wsUrl);
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.on('open', () => reject(new Error('a third connection was accepted')));
      socket.on('error', () => undefined);
    });
    expect(status).toBe(503);
    a.close();
    await a.closed;
    await vi.waitFor(async () => expect((await adminConnections(gw.url)).count).toBe(1));
    await using c = await TestClient.connect(gw.wsUrl);
    expect(c.messages[0]!.type).toBe('connected');
  });

  it('refuses an upgrade on any path but /ws with 404', async () => {
    await using gw = await startGateway();
    const status = await new Promise<number>((resolve) => {
      const socket = new WebSocket(gw.wsUrl.replace(/\/ws$/, '/elsewhere'));
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.on('error', () => undefined);
    });
    expect(status).toBe(404);
  });
});
