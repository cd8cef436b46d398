import { describe, expect, it, vi } from 'vitest';
import { describeStatus, type ClientStatus } from '../src/index.js';
import { FakeSocket } from './support/fake-socket.js';
import { makeClient, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

describe('the connection state machine', () => {
  it('goes disconnected → connecting → connected and reports the connection id, last message time and sequence number', () => {
    const client = track(makeClient({ autoConnect: false }));
    const states: string[] = [];
    client.on('status', (s) => states.push(s.state));
    expect(client.status.state).toBe('disconnected');
    client.connect();
    expect(client.status.state).toBe('connecting');
    FakeSocket.last.accept();
    expect(states.filter((s, i) => s !== states[i - 1])).toEqual(['connecting', 'connected']);
    expect(client.status).toMatchObject({ attempt: 0, nextRetryAt: null, lastSequenceNumber: 0, lastMessageAt: Date.now() });
    expect(client.status.connectionId).toMatch(/^00000000-/);
    expect(describeStatus(client.status)).toBe('Live');
  });

  it('reconnects after 1, 2, 4 s counting attempts, and fails after the last one', () => {
    const client = track(makeClient({ maxAttempts: 3 }));
    const seen: ClientStatus[] = [];
    client.on('status', (s) => seen.push(s));
    FakeSocket.last.drop();
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1, maxAttempts: 3, nextRetryAt: Date.now() + 1000 });
    expect(describeStatus(client.status)).toBe('Reconnecting (attempt 1/3)');
    vi.advanceTimersByTime(999);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.last.drop();
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 2, nextRetryAt: Date.now() + 2000 });
    vi.advanceTimersByTime(2000);
    FakeSocket.last.drop();
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 3, nextRetryAt: Date.now() + 4000 });
    vi.advanceTimersByTime(4000);
    FakeSocket.last.drop();
    expect(client.status).toMatchObject({ state: 'failed', nextRetryAt: null });
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeSocket.all).toHaveLength(4);
    expect(describeStatus(client.status)).toBe('Disconnected');
    expect(seen.map((s) => s.state)).toContain('reconnecting');
  });

  it('starts counting attempts again from 1 after a good connection', () => {
    const client = track(makeClient());
    FakeSocket.last.drop();
    vi.advanceTimersByTime(1000);
    FakeSocket.last.drop();
    expect(client.status.attempt).toBe(2);
    vi.advanceTimersByTime(2000);
    FakeSocket.last.accept();
    expect(client.status).toMatchObject({ state: 'connected', attempt: 0 });
    FakeSocket.last.drop();
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1, nextRetryAt: Date.now() + 1000 });
  });

  it('reconnects at once on reconnectNow(), and starts over after having given up', () => {
    const client = track(makeClient({ maxAttempts: 1 }));
    FakeSocket.last.drop();
    expect(client.status.state).toBe('reconnecting');
    client.reconnectNow();
    expect(FakeSocket.all).toHaveLength(2);
    expect(client.status.nextRetryAt).toBeNull();
    FakeSocket.last.drop();
    expect(client.status.state).toBe('failed');
    client.reconnectNow();
    expect(client.status).toMatchObject({ state: 'connecting', attempt: 0 });
    FakeSocket.last.accept();
    expect(client.status.state).toBe('connected');
  });

  it('stops for good on disconnect(): no retry ever follows', () => {
    const client = track(makeClient());
    FakeSocket.last.accept();
    client.disconnect();
    expect(client.status.state).toBe('disconnected');
    expect(FakeSocket.last.closedWith?.code).toBe(1000);
    vi.advanceTimersByTime(60 * 60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('stops for good on disconnect() while waiting to retry', () => {
    const client = track(makeClient());
    FakeSocket.last.drop();
    client.disconnect();
    vi.advanceTimersByTime(60 * 60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(client.status.state).toBe('disconnected');
  });

  it('moves to the next URL when a connection fails', () => {
    const client = track(makeClient({ url: ['ws://a.test/ws', 'ws://b.test/ws'] }));
    expect(FakeSocket.last.url).toBe('ws://a.test/ws');
    FakeSocket.last.drop();
    vi.advanceTimersByTime(1000);
    expect(FakeSocket.last.url).toBe('ws://b.test/ws');
    expect(client.status.url).toBe('ws://b.test/ws');
  });

  it('counts a socket that never finishes its handshake as a failed attempt', () => {
    const client = track(makeClient({ connectTimeoutMs: 5000 }));
    vi.advanceTimersByTime(4999);
    expect(client.status.state).toBe('connecting');
    vi.advanceTimersByTime(1);
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1 });
    expect(FakeSocket.all[0]!.closedWith?.code).toBe(4000);
  });

  it('does not reconnect when the server closes with a "stop" code', () => {
    const client = track(makeClient());
    FakeSocket.last.accept();
    FakeSocket.last.drop(4200, 'banned');
    expect(client.status).toMatchObject({ state: 'failed', lastClose: { code: 4200, reason: 'banned' } });
  });
});

describe('authentication', () => {
  it('closes and retries when the token function fails, and connects with the next token', async () => {
    const token = vi.fn<() => Promise<string>>().mockRejectedValueOnce(new Error('token service down')).mockResolvedValue('t2');
    const client = track(makeClient({ token }));
    FakeSocket.last.accept();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all[0]!.closedWith?.code).toBe(4001);
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    const socket = FakeSocket.last;
    expect(FakeSocket.all).toHaveLength(2);
    socket.accept();
    await vi.advanceTimersByTimeAsync(0);
    const auth = socket.lastOf('auth');
    expect(auth.data).toEqual({ token: 't2' });
    socket.receive({ type: 'authenticated', id: auth.id, accounts: '*', can_trade: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(client.status).toMatchObject({ state: 'connected', attempt: 0 });
  });

  it('closes and retries when the auth request gets no reply in time', async () => {
    const client = track(makeClient({ token: 't1', requestTimeoutMs: 500 }));
    FakeSocket.last.accept();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.sentOf('auth')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1, lastClose: { code: 4001 } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all).toHaveLength(2);
  });
});

describe('heartbeats', () => {
  it('pings every interval and treats two intervals of silence as a dead connection', () => {
    const client = track(makeClient());
    FakeSocket.last.accept(1000);
    vi.advanceTimersByTime(1000);
    expect(FakeSocket.last.sentOf('ping')).toHaveLength(1);
    vi.advanceTimersByTime(999);
    expect(client.status.state).toBe('connected');
    vi.advanceTimersByTime(1);
    expect(client.status).toMatchObject({ state: 'reconnecting', lastClose: { code: 4000, reason: 'heartbeat timeout' } });
  });

  it('keeps a connection alive while messages arrive', () => {
    const client = track(makeClient());
    const socket = FakeSocket.last;
    socket.accept(1000);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(1500);
      socket.receive({ type: 'pong' });
    }
    expect(client.status.state).toBe('connected');
    expect(FakeSocket.all).toHaveLength(1);
  });
});
