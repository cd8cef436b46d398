import { describe, expect, it } from 'vitest';
import { STREAM_KINDS, parseStream } from '@tradesync/protocol';
import { Simulator, SimClock } from '../src/index.js';
import { startGateway } from '@tradesync/testing';
import { START } from './support.js';

describe('the simulator against a real gateway', () => {
  it('has every event accepted and feeds every stream kind; commands work over HTTP', async () => {
    await using g = await startGateway({ durability: 'normal' } as never);
    const sim = new Simulator({ sink: g.gateway, state: g.gateway.store, seed: 3, clock: new SimClock(START, 1000), markEverySteps: 1 });
    g.gateway.setCommandHandler(sim.commands);
    // Any PublishError would reject a step and fail the test.
    for (let i = 0; i < 1500; i++) await sim.step();
    const kinds = new Set<string>();
    for (const entry of g.gateway.store.entries()) if (entry.head > 0) kinds.add(parseStream(entry.name)!.kind);
    expect([...kinds].sort()).toEqual([...STREAM_KINDS].sort());

    const res = await fetch(`${g.url}/api/v1/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'place_order', account: 'demo-2', symbol: 'AAPL', side: 'buy', quantity: '1', command_id: 'h1' }),
    });
    const body = (await res.json()) as { success: boolean; result: { order_id: string } };
    expect(body.success).toBe(true);
    const orders = g.gateway.store.stateOf('orders:demo-2') as { orders: Record<string, unknown> };
    expect(orders.orders[body.result.order_id]).toBeDefined();
  }, 60_000);
});
