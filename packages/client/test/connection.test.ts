import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConnectionLostError,
  RequestTimeoutError,
  TradeSyncClient,
  describeStatus,
  type ClientOptions,
  type ClientStatus,
  type CommandUpdate,
  type LiveEvent,
  type Logger,
} from '../src/index.js';
import type { StreamState } from '@tradesync/protocol';
import { FakeSocket, TIMESTAMP } from './support/fake-socket.js';

const STREAM = 'orders:acme';
const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };

/** A client on fake sockets whose jitter is pinned to the middle: every delay is its base. */
function makeClient(options: Partial<ClientOptions> = {}): TradeSyncClient {
  return new TradeSyncClient({ url: 'ws://gw.test/ws', WebSocket: FakeSocket, fetch: null, random: () => 0.5, logger: quiet, ...options } as ClientOptions);
}

function orderEvent(offset: number, fields: Record<string, unknown> = {}, epoch = 'e1'): LiveEvent {
  return {
    type: 'order:updated',
    stream: STREAM,
    epoch,
    offset,
    timestamp: TIMESTAMP,
    data: {
      order_id: `o${offset}`,
      symbol: 'BTC-USD',
      side: 'buy',
      order_type: 'limit',
      quantity: '1',
      price: '100.00',
      filled_quantity: '0',
      status: 'open',
      session_id: null,
      created_at: TIMESTAMP,
      ...fields,
    },
  };
}

/** Connects the newest socket, answers the subscribe of STREAM with a snapshot at `offset`, and lets the reply land. */
async function connectAndSync(socket: FakeSocket, offset = 0): Promise<void> {
  socket.accept();
  socket.answerSubscribe(STREAM, { offset });
  await vi.advanceTimersByTimeAsync(0);
}

let clients: TradeSyncClient[] = [];
const track = (client: TradeSyncClient) => (clients.push(client), client);

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});

afterEach(() => {
  for (const client of clients) client.disconnect();
  clients = [];
  vi.useRealTimers();
});

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

describe('requests', () => {
  it('fails with RequestTimeoutError when no reply comes in time', async () => {
    const client = track(makeClient({ requestTimeoutMs: 500 }));
    FakeSocket.last.accept();
    const reply = client.request('ping', {}, 0);
    const caught = expect(reply).rejects.toBeInstanceOf(RequestTimeoutError);
    await vi.advanceTimersByTimeAsync(500);
    await caught;
  });

  it('fails a request in flight with ConnectionLostError when the socket drops (no retries)', async () => {
    const client = track(makeClient());
    FakeSocket.last.accept();
    const reply = client.request('state_sync_request', {}, 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.last.sentOf('state_sync_request')).toHaveLength(1);
    FakeSocket.last.drop();
    await expect(reply).rejects.toBeInstanceOf(ConnectionLostError);
  });

  it('retries a request in flight on the next connection when the socket drops', async () => {
    const client = track(makeClient());
    FakeSocket.last.accept();
    const reply = client.getInitialState(['connection']);
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    const socket = FakeSocket.last;
    socket.accept();
    await vi.advanceTimersByTimeAsync(0);
    const request = socket.lastOf('get_initial_state');
    expect(request.data).toEqual({ include: ['connection'] });
    socket.receive({ type: 'initial_state', id: request.id, success: true, data: { connection: { ok: 1 } } });
    await expect(reply).resolves.toEqual({ connection: { ok: 1 } });
  });

  it('never leaves a request hanging: after the last attempt the client gives up and the request fails', async () => {
    const client = track(makeClient({ maxAttempts: 1, requestTimeoutMs: 60_000 }));
    FakeSocket.last.accept();
    const reply = client.request('state_sync_request', {}, 5);
    const settled = expect(reply).rejects.toThrow();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.drop();
    expect(client.status.state).toBe('failed');
    await vi.advanceTimersByTimeAsync(0);
    await settled;
  });
});

describe('messages and listeners', () => {
  it('logs and skips invalid messages, emitting invalid_message, and keeps going', async () => {
    const warn = vi.fn();
    const client = track(makeClient({ logger: { ...quiet, warn } }));
    const invalid: string[] = [];
    client.on('invalid_message', (_raw, reason) => invalid.push(reason));
    const handle = client.subscribe(STREAM);
    const socket = FakeSocket.last;
    await connectAndSync(socket);
    socket.receiveRaw('{not json');
    socket.receive({ type: 'order:updated', stream: STREAM, epoch: 'e1' }); // no offset, no data
    socket.receive({ ...orderEvent(1) });
    expect(invalid).toHaveLength(2);
    expect(warn).toHaveBeenCalledWith('invalid message skipped', expect.anything());
    expect(handle.position).toEqual({ epoch: 'e1', offset: 1 });
    expect(client.status.state).toBe('connected');
  });

  it('tells onChange listeners of every change and gives the exact state when they read it later', async () => {
    const client = track(makeClient());
    const reasons: string[] = [];
    const handle = client.subscribe(STREAM, { onChange: (reason) => reasons.push(reason) });
    const socket = FakeSocket.last;
    await connectAndSync(socket);
    for (let offset = 1; offset <= 5; offset++) socket.receive({ ...orderEvent(offset) });
    expect(reasons).toEqual(['snapshot', 'event', 'event', 'event', 'event', 'event']);
    // Read once, after many messages: every event is in it.
    expect(Object.keys((handle.state as { orders: Record<string, unknown> }).orders)).toEqual(['o1', 'o2', 'o3', 'o4', 'o5']);
    expect(handle.position).toEqual({ epoch: 'e1', offset: 5 });
  });

  it('keeps calling the other listeners, and the socket open, when a listener throws', async () => {
    const client = track(makeClient());
    const second = vi.fn();
    const statusSeen = vi.fn();
    client.on('status', () => {
      throw new Error('status listener bug');
    });
    client.on('status', statusSeen);
    client.subscribe(STREAM, {
      onEvent: () => {
        throw new Error('panel bug');
      },
    });
    client.subscribe(STREAM, { onEvent: second });
    const socket = FakeSocket.last;
    await connectAndSync(socket);
    socket.receive({ ...orderEvent(1) });
    socket.receive({ ...orderEvent(2) });
    expect(second).toHaveBeenCalledTimes(2);
    expect(statusSeen).toHaveBeenCalled();
    expect(client.status.state).toBe('connected');
  });

  it('shares one server subscription between listeners and unsubscribes when the last one leaves', async () => {
    const client = track(makeClient());
    const socket = FakeSocket.last;
    socket.accept();
    const a = client.subscribe(STREAM);
    const b = client.subscribe(STREAM);
    expect(socket.sentOf('subscribe')).toHaveLength(1);
    socket.answerSubscribe(STREAM);
    a.unsubscribe();
    a.unsubscribe();
    await vi.advanceTimersByTimeAsync(0);
    expect(socket.sentOf('unsubscribe')).toHaveLength(0);
    b.unsubscribe();
    await vi.advanceTimersByTimeAsync(0);
    expect(socket.sentOf('unsubscribe')).toEqual([expect.objectContaining({ data: { stream: STREAM } })]);
  });
});

describe('resume and resync', () => {
  it('resyncs a stream with since = its position when a live event skips an offset', async () => {
    const client = track(makeClient());
    const synced = vi.fn();
    client.on('synced', synced);
    const handle = client.subscribe(STREAM);
    const socket = FakeSocket.last;
    await connectAndSync(socket);
    socket.receive({ ...orderEvent(1) });
    socket.receive({ ...orderEvent(3) });
    const resubscribe = socket.lastOf('subscribe');
    expect(resubscribe.data).toEqual({ stream: STREAM, since: { epoch: 'e1', offset: 1 } });
    socket.receive({ type: 'subscribed', id: resubscribe.id, stream: STREAM, epoch: 'e1', offset: 3, recovered: true, events: [orderEvent(2), orderEvent(3)] });
    await vi.advanceTimersByTimeAsync(0);
    expect(handle.position).toEqual({ epoch: 'e1', offset: 3 });
    expect(synced).toHaveBeenLastCalledWith(expect.objectContaining({ recovered: true, offset: 3 }));
  });

  it('resumes every stream from its position after a reconnect', async () => {
    const client = track(makeClient());
    client.subscribe(STREAM);
    await connectAndSync(FakeSocket.last, 5);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.accept();
    expect(FakeSocket.last.lastOf('subscribe').data).toEqual({ stream: STREAM, since: { epoch: 'e1', offset: 5 } });
  });

  it('takes a snapshot after the server invalidated its state (close 4009)', async () => {
    const client = track(makeClient());
    client.subscribe(STREAM);
    await connectAndSync(FakeSocket.last, 5);
    FakeSocket.last.drop(4009, 'state invalidated');
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.accept();
    expect(FakeSocket.last.lastOf('subscribe').data).toEqual({ stream: STREAM });
  });

  it('resyncs when an unrequested snapshot leaves a gap (live events overflowed the buffer)', async () => {
    const client = track(makeClient({ requestTimeoutMs: 100, syncRetries: 0, maxBufferedEvents: 1 }));
    client.on('sync_failed', () => {});
    const handle = client.subscribe(STREAM);
    const socket = FakeSocket.last;
    socket.accept();
    // The subscribe times out for good: the stream waits in 'syncing', no sync running.
    await vi.advanceTimersByTimeAsync(100);
    expect(socket.sentOf('subscribe')).toHaveLength(1);
    socket.receive({ ...orderEvent(1) });
    socket.receive({ ...orderEvent(2) });
    // The stream's history vanished: the server sends a fresh snapshot, unasked.
    socket.receive({ type: 'subscribed', stream: STREAM, epoch: 'e2', offset: 5, recovered: false, snapshot: { epoch: 'e2', offset: 5, state: { orders: {} } } });
    expect(handle.position).toEqual({ epoch: 'e2', offset: 5 });
    expect(socket.sentOf('subscribe')).toHaveLength(2);
    expect(socket.lastOf('subscribe').data).toEqual({ stream: STREAM, since: { epoch: 'e2', offset: 5 } });
  });

  it('reports sync_failed after the retries of a subscribe that never gets a reply', async () => {
    const client = track(makeClient({ requestTimeoutMs: 100, syncRetries: 2 }));
    const failed = vi.fn();
    client.on('sync_failed', failed);
    client.subscribe(STREAM);
    FakeSocket.last.accept();
    FakeSocket.last.onmessage = null; // the server goes quiet on this socket, but it stays open
    await vi.advanceTimersByTimeAsync(300);
    expect(failed).toHaveBeenCalledWith(expect.objectContaining({ stream: STREAM, attempts: 3 }));
  });
});

describe('optimistic commands', () => {
  const cancel = (state: StreamState): StreamState => ({ ...state, orders: {} }) as StreamState;

  async function setup(options: Partial<ClientOptions> = {}) {
    const client = track(makeClient(options));
    const updates: CommandUpdate[] = [];
    client.on('command', (u) => updates.push(u));
    const handle = client.subscribe(STREAM);
    const socket = FakeSocket.last;
    await connectAndSync(socket);
    socket.receive({ ...orderEvent(1) });
    return { client, updates, handle, socket };
  }

  it('shows the patch at once, confirms it on success and hands over to the event that follows', async () => {
    const { client, updates, handle, socket } = await setup();
    const result = client.command('cancel_order', { order_id: 'o1' }, { optimistic: { stream: STREAM, apply: cancel } });
    expect(handle.state).toEqual({ orders: {} });
    await vi.advanceTimersByTimeAsync(0);
    const request = socket.lastOf('command');
    expect(request.data).toMatchObject({ action: 'cancel_order', order_id: 'o1' });
    socket.receive({ type: 'command_result', id: request.id, success: true });
    await expect(result).resolves.toMatchObject({ success: true });
    expect(handle.state).toEqual({ orders: {} });
    socket.receive({ type: 'order:closed', stream: STREAM, epoch: 'e1', offset: 2, data: { order_id: 'o1', status: 'cancelled' } });
    expect(handle.state).toEqual({ orders: {} });
    expect(updates.map((u) => u.phase)).toEqual(['pending', 'confirmed']);
    vi.advanceTimersByTime(30_000);
    expect(updates.map((u) => u.phase)).toEqual(['pending', 'confirmed']);
  });

  it('rolls the patch back when the server rejects the command', async () => {
    const { client, updates, handle, socket } = await setup();
    const before = handle.state;
    const result = client.command('cancel_order', { order_id: 'o1' }, { optimistic: { stream: STREAM, apply: cancel } });
    await vi.advanceTimersByTimeAsync(0);
    socket.receive({ type: 'command_result', id: socket.lastOf('command').id, success: false, error: { code: 'NOT_FOUND', message: 'no such order' } });
    await expect(result).resolves.toMatchObject({ success: false });
    expect(handle.state).toEqual(before);
    expect(updates.at(-1)).toMatchObject({ phase: 'rolled_back', error: { code: 'NOT_FOUND' } });
  });

  it('rolls the patch back after 10 s without confirmation', async () => {
    const { client, updates, handle } = await setup({ requestTimeoutMs: 60_000 });
    const before = handle.state;
    void client.command('cancel_order', { order_id: 'o1' }, { optimistic: { stream: STREAM, apply: cancel } }).catch(() => {});
    expect(handle.state).toEqual({ orders: {} });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(handle.state).toEqual({ orders: {} });
    await vi.advanceTimersByTimeAsync(1);
    expect(handle.state).toEqual(before);
    expect(updates.at(-1)).toMatchObject({ phase: 'rolled_back', error: { code: 'TIMEOUT' } });
  });
});

describe('degraded mode', () => {
  it('refreshes replicas from GET /api/state/snapshot while the socket cannot reconnect, and says so', async () => {
    const fetchMock = vi.fn(async (url: string) => {
      expect(url).toBe('http://gw.test/api/state/snapshot?streams=orders%3Aacme&account=acme');
      return new Response(JSON.stringify({ snapshots: { [STREAM]: { epoch: 'e1', offset: 9, state: { orders: { x: { order_id: 'x' } } } } } }), { status: 200 });
    });
    const client = track(makeClient({ fetch: fetchMock as unknown as typeof fetch }));
    const handle = client.subscribe(STREAM);
    await connectAndSync(FakeSocket.last);
    FakeSocket.last.drop();
    // The first reconnect attempt is a blip's business: the resume replays what was missed.
    await vi.advanceTimersByTimeAsync(0);
    expect(fetchMock).not.toHaveBeenCalled();
    expect(client.status.degraded).toBe(false);
    // The attempt fails too: now the socket cannot get back, and HTTP takes over.
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(0);
    await vi.waitFor(() => expect(client.status.degraded).toBe(true));
    expect(handle.state).toEqual({ orders: { x: { order_id: 'x' } } });
    expect(describeStatus(client.status)).toBe('Reconnecting (attempt 2/10) — degraded');
    await vi.advanceTimersByTimeAsync(2000);
    FakeSocket.last.accept();
    expect(client.status).toMatchObject({ state: 'connected', degraded: false });
    expect(FakeSocket.last.lastOf('subscribe').data).toEqual({ stream: STREAM, since: { epoch: 'e1', offset: 9 } });
  });

  it('sends the token of a token function with its snapshot requests', async () => {
    const fetchMock = vi.fn(async (_url: string, _init?: RequestInit) => new Response(JSON.stringify({ snapshots: {} }), { status: 200 }));
    const client = track(makeClient({ fetch: fetchMock as unknown as typeof fetch, token: async () => 'fresh-token' }));
    client.subscribe(STREAM);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(0);
    await vi.waitFor(() => expect(fetchMock).toHaveBeenCalled());
    expect(fetchMock.mock.calls[0]![1]).toEqual({ headers: { authorization: 'Bearer fresh-token' } });
  });
});
