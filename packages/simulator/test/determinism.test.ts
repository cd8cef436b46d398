import { describe, expect, it } from 'vitest';
import { recordedSimulator, steps } from './support.js';

describe('a seeded run', () => {
  it('gives the same events for the same seed and simulated clock', async () => {
    const a = recordedSimulator({ seed: 42 });
    const b = recordedSimulator({ seed: 42 });
    await steps(a.sim, 400);
    await steps(b.sim, 400);
    expect(a.recorder.events.length).toBeGreaterThan(2000);
    expect(b.recorder.events).toEqual(a.recorder.events);
  });

  it('gives a different market for a different seed', async () => {
    const a = recordedSimulator({ seed: 1 });
    const b = recordedSimulator({ seed: 2 });
    await steps(a.sim, 20);
    await steps(b.sim, 20);
    const ticks = (r: typeof a.recorder) => r.events.filter((e) => e.type === 'market:tick').map((e) => e.data.price);
    expect(ticks(b.recorder)).not.toEqual(ticks(a.recorder));
  });

  it('stays the same when the same commands come between the same steps', async () => {
    const run = async () => {
      const { sim, recorder } = recordedSimulator({ seed: 9, desk: { autoExecute: 0 } });
      await steps(sim, 5);
      await sim.commands.handle({ action: 'place_order', symbol: 'ETH-USD', side: 'buy', quantity: '1', command_id: 'x' }, { account: 'demo' });
      await steps(sim, 50);
      return recorder.events;
    };
    expect(await run()).toEqual(await run());
  });

  it('publishes prices as decimal strings on the tick size', async () => {
    const { sim, recorder } = recordedSimulator();
    await steps(sim, 50);
    for (const e of recorder.events.filter((x) => x.type === 'market:tick')) {
      expect(e.data.price).toMatch(e.data.symbol === 'SOL-USD' ? /^\d+\.\d{3}$/ : /^\d+\.\d{2}$/);
      expect(e.data.volume).toMatch(/^\d+(\.\d+)?$/);
    }
  });
});
