import { describe, expect, it, vi } from 'vitest';
import type { ClientOptions, CommandUpdate } from '../src/index.js';
import type { StreamState } from '@tradesync/protocol';
import { FakeSocket } from './support/fake-socket.js';
import { STREAM, connectAndSync, makeClient, orderEvent, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

describe('optimistic commands', () => {
  const cancel = (state: StreamState): StreamState => ({ ...state, orders: {} });

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

describe('commands without a patch', () => {
  it('resolves with the typed command_result, carrying the command id it sent', async () => {
    const client = track(makeClient());
    const socket = FakeSocket.last;
    socket.accept();
    const result = client.command('execute_signal', { signal_id: 's1' }, { commandId: 'cmd-1', account: 'acme' });
    await vi.advanceTimersByTimeAsync(0);
    const request = socket.lastOf('command');
    expect(request.data).toEqual({ signal_id: 's1', action: 'execute_signal', command_id: 'cmd-1', account: 'acme' });
    socket.receive({ type: 'command_result', id: request.id, success: true, result: { order_id: 'o9' } });
    await expect(result).resolves.toEqual({ success: true, commandId: 'cmd-1', action: 'execute_signal', result: { order_id: 'o9' } });
  });

  it('refuses an optimistic patch on a stream that is not subscribed', async () => {
    const client = track(makeClient());
    await expect(client.command('cancel_order', {}, { optimistic: { stream: STREAM, apply: (s) => s } })).rejects.toBeInstanceOf(TypeError);
  });
});
