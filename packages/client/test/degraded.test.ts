import { describe, expect, it, vi } from 'vitest';
import { describeStatus } from '../src/index.js';
import { FakeSocket } from './support/fake-socket.js';
import { STREAM, connectAndSync, makeClient, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

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

describe('degraded mode, in detail', () => {
  it('never takes a replica back in time, and skips snapshots that break the contract', async () => {
    const fetchMock = vi.fn<typeof fetch>(async () => new Response(JSON.stringify({ snapshots: { [STREAM]: { epoch: 'e1', offset: 3, state: { orders: {} } }, 'market:BTC-USD': { offset: 'x' } } }), { status: 200 }));
    const client = track(makeClient({ fetch: fetchMock }));
    const handle = client.subscribe(STREAM);
    await connectAndSync(FakeSocket.last, 7);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(0);
    await vi.waitFor(() => expect(fetchMock).toHaveBeenCalled());
    await vi.advanceTimersByTimeAsync(0);
    expect(handle.position).toEqual({ epoch: 'e1', offset: 7 });
  });

  it('stops polling once the socket is back', async () => {
    const fetchMock = vi.fn<typeof fetch>(async () => new Response(JSON.stringify({ snapshots: {} }), { status: 200 }));
    const client = track(makeClient({ fetch: fetchMock, degradedPollMs: 100 }));
    client.subscribe(STREAM);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.drop();
    await vi.advanceTimersByTimeAsync(500);
    expect(fetchMock.mock.calls.length).toBeGreaterThan(1);
    await vi.advanceTimersByTimeAsync(1500);
    FakeSocket.last.accept();
    const calls = fetchMock.mock.calls.length;
    await vi.advanceTimersByTimeAsync(1000);
    expect(fetchMock.mock.calls.length).toBe(calls);
    expect(client.status).toMatchObject({ state: 'connected', degraded: false });
  });
});
