import { describe, expect, it, vi } from 'vitest';
import { effectScope } from 'vue';
import { ClientClosedError } from '@tradesync/client';
import type { CommandHandler } from '@tradesync/server';
import { startGateway } from '@tradesync/testing';
import { useCommand } from '../src/index.js';
import { nodeClient } from './support/client.js';

/** An engine that holds each command until the test lets it answer; orders whose id contains `refuse` are refused. */
class HeldCommands implements CommandHandler {
  readonly actions = ['cancel_order'];
  readonly #waiting: Array<() => void> = [];

  get waiting(): number {
    return this.#waiting.length;
  }

  release(): void {
    for (const answer of this.#waiting.splice(0)) answer();
  }

  async handle(command: { action: string } & Record<string, unknown>) {
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    const id = String(command.order_id);
    if (id.includes('refuse')) return { success: false, error: { code: 'RISK_LIMIT', message: 'not now' } };
    return { success: true, result: { order_id: id } };
  }
}

describe('useCommand', () => {
  it('is pending while a command runs, then holds its result (a refusal included), or why it got no answer', async () => {
    const engine = new HeldCommands();
    await using gw = await startGateway({}, { commands: engine });
    const client = nodeClient(gw.wsUrl);
    await vi.waitFor(() => expect(client.status.state).toBe('connected'));
    const { send, pending, lastResult, error } = effectScope().run(() => useCommand({ client }))!;
    expect(pending.value).toBe(false);

    const cancelled = send('cancel_order', { order_id: 'ord-1' });
    expect(pending.value).toBe(true);
    await vi.waitFor(() => expect(engine.waiting).toBe(1));
    expect(lastResult.value).toBeUndefined();
    engine.release();
    expect(await cancelled).toMatchObject({ success: true, action: 'cancel_order', result: { order_id: 'ord-1' } });
    expect(pending.value).toBe(false);
    expect(lastResult.value).toMatchObject({ success: true, result: { order_id: 'ord-1' } });

    // Two at once (the gateway answers a connection's commands one after the other):
    // pending until both are answered; the outcome is the one answered last.
    const older = send('cancel_order', { order_id: 'ord-2' });
    const newer = send('cancel_order', { order_id: 'ord-refuse' });
    await vi.waitFor(() => expect(engine.waiting).toBe(1));
    engine.release();
    expect(await older).toMatchObject({ success: true });
    expect(pending.value).toBe(true);
    await vi.waitFor(() => expect(engine.waiting).toBe(1));
    engine.release();
    expect(await newer).toMatchObject({ success: false });
    expect(pending.value).toBe(false);
    expect(lastResult.value).toMatchObject({ success: false, error: { code: 'RISK_LIMIT', message: 'not now' } });
    expect(error.value).toBeUndefined();

    // No answer: the client is closed while the command runs.
    const lost = send('cancel_order', { order_id: 'ord-3' });
    await vi.waitFor(() => expect(engine.waiting).toBe(1));
    client.disconnect();
    await expect(lost).rejects.toBeInstanceOf(ClientClosedError);
    expect(error.value).toBeInstanceOf(ClientClosedError);
    expect(pending.value).toBe(false);
    engine.release();
  });
});
