import { describe, expect, it } from 'vitest';
import type { EventInput } from '@tradesync/protocol';
import { EventRecorder, SimClock, Simulator } from '../src/index.js';
import { START } from './support.js';

/** A recorder that also counts its publishes (one per append the gateway would make). */
class CountingRecorder extends EventRecorder {
  publishes = 0;
  readonly published: EventInput[] = [];
  override async publish(events: readonly EventInput[]) {
    this.publishes++;
    this.published.push(...events);
    return super.publish(events);
  }
}

describe('the simulator running flat out', () => {
  it('publishes the events of many steps together, in the order stepping one at a time gives them', async () => {
    const running = new CountingRecorder();
    const sim = new Simulator({ sink: running, state: running, seed: 4, clock: new SimClock(START, 1000), rate: Infinity, reconcileEverySteps: 30 });
    await sim.start();
    const opening = running.publishes;
    sim.run();
    while (sim.steps < 200) await new Promise((resolve) => setImmediate(resolve));
    await sim.stop();
    const steps = sim.steps;
    expect(sim.eventsPublished).toBe(running.published.length);

    const stepped = new CountingRecorder();
    const one = new Simulator({ sink: stepped, state: stepped, seed: 4, clock: new SimClock(START, 1000), rate: Infinity, reconcileEverySteps: 30 });
    await one.start();
    for (let i = 0; i < steps; i++) await one.step();
    const strip = (events: readonly EventInput[]) => events.map((e) => `${e.stream} ${e.type} ${JSON.stringify(e.data)}`);
    expect(strip(running.published)).toEqual(strip(stepped.published));
    // One publish per step (and per reconciliation) one at a time; a burst's worth together when running.
    expect(stepped.publishes - opening).toBeGreaterThanOrEqual(steps);
    expect(running.publishes - opening).toBeLessThan(steps / 5);
  });
});
