import { describe, expect, it, vi } from 'vitest';
import { FakeSocket } from './support/fake-socket.js';
import { STREAM, connectAndSync, makeClient, orderEvent, quiet, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

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
  it('ignores a late subscribed reply whose request gave up: it never moves the replica back', async () => {
    const client = track(makeClient({ requestTimeoutMs: 500 }));
    const handle = client.subscribe(STREAM);
    const socket = FakeSocket.last;
    socket.accept();
    await vi.advanceTimersByTimeAsync(0);
    const first = socket.lastOf('subscribe');
    // No answer in time: the client asks again, and the second answer takes it to offset 5.
    await vi.advanceTimersByTimeAsync(500);
    await vi.advanceTimersByTimeAsync(0);
    expect(socket.sentOf('subscribe').length).toBe(2);
    socket.answerSubscribe(STREAM, { offset: 5 });
    await vi.advanceTimersByTimeAsync(0);
    expect(handle.position?.offset).toBe(5);
    // The first request's reply, late, at offset 2.
    socket.receive({ type: 'subscribed', id: first.id, stream: STREAM, epoch: 'e1', offset: 2, recovered: false, snapshot: { epoch: 'e1', offset: 2, state: { orders: {} } } });
    expect(handle.position?.offset).toBe(5);
    socket.receive(orderEvent(6));
    expect(handle.position?.offset).toBe(6);
  });

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
