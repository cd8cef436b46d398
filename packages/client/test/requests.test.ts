import { describe, expect, it, vi } from 'vitest';
import { ClientClosedError, ConnectionLostError, RequestTimeoutError, ServerError } from '../src/index.js';
import { Requests } from '../src/requests.js';
import { systemTimers } from '../src/timers.js';
import { FakeSocket } from './support/fake-socket.js';
import { makeClient, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

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

describe('the request manager', () => {
  const TS = '2025-01-01T00:00:00.000Z';
  function setup() {
    let open = false;
    const written: Array<{ id: string; type: string; data: Record<string, unknown> }> = [];
    const requests = new Requests('t-', { isOpen: () => open, write: (m) => (written.push(m), open) }, systemTimers, { timeoutMs: 1000, retries: 0 });
    return { requests, written, open: () => ((open = true), requests.opened()) };
  }

  it('holds a request until the connection opens, then matches the reply of its type by id', async () => {
    const { requests, written, open } = setup();
    const reply = requests.send('get_initial_state', { include: ['connection'] });
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([]);
    open();
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([{ id: 't-1', type: 'get_initial_state', data: { include: ['connection'] } }]);
    expect(requests.settle({ type: 'initial_state', id: 't-1', sequence_number: 1, timestamp: TS, success: true, data: { connection: {} } })).toBe(true);
    await expect(reply).resolves.toMatchObject({ type: 'initial_state', data: { connection: {} } });
  });

  it('rejects with ServerError for an error reply, and for a reply of the wrong type', async () => {
    const { requests, open } = setup();
    open();
    const one = requests.send('ping', {});
    const two = requests.send('ping', {});
    requests.settle({ type: 'error', id: 't-1', sequence_number: 1, timestamp: TS, success: false, error: { code: 'RATE_LIMITED', message: 'slow down' } });
    requests.settle({ type: 'unsubscribed', id: 't-2', sequence_number: 2, timestamp: TS, stream: 'orders:acme' });
    await expect(one).rejects.toSatisfy((e) => e instanceof ServerError && e.code === 'RATE_LIMITED' && e.requestType === 'ping');
    await expect(two).rejects.toSatisfy((e) => e instanceof ServerError && e.code === 'INVALID_MESSAGE');
  });

  it('fails requests waiting for a connection with ClientClosedError when the client stops', async () => {
    const { requests } = setup();
    const reply = requests.send('ping', {});
    requests.closed();
    await expect(reply).rejects.toBeInstanceOf(ClientClosedError);
  });

  it('ignores replies nobody waits for', () => {
    const { requests } = setup();
    expect(requests.settle({ type: 'pong', id: 'gone', sequence_number: 1, timestamp: TS })).toBe(false);
    expect(requests.settle({ type: 'pong', sequence_number: 1, timestamp: TS })).toBe(false);
  });
});
