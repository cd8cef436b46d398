/**
 * How many events per second the built-in simulator publishes, flat out, into a real
 * embedded gateway (validation, append, reducer, fan-out to nobody). A measurement,
 * not a test: it fails only when the simulator reports an error or publishes nothing.
 *
 *   node --conditions=@tradesync/source --import tsx bench/simulator-rate.ts [--seconds 3] [--seed 5]
 */
import { parseArgs } from 'node:util';
import { Simulator } from '@tradesync/simulator';
import { startGateway } from '@tradesync/testing';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    seed: { type: 'string', default: '5' },
  },
});
const seconds = Number(args.seconds);
const seed = Number(args.seed);
if (!(seconds > 0) || !Number.isInteger(seed)) {
  console.error('usage: node --conditions=@tradesync/source --import tsx bench/simulator-rate.ts [--seconds N > 0] [--seed integer]');
  process.exit(2);
}

await using g = await startGateway({ durability: 'normal' });
const errors: unknown[] = [];
const sim = new Simulator({ sink: g.gateway, state: g.gateway.store, seed, rate: Infinity, onError: (e) => errors.push(e) });
g.gateway.setCommandHandler(sim.commands);
await sim.start();
const t0 = performance.now();
const e0 = sim.eventsPublished;
sim.run();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
await sim.stop();
const elapsed = (performance.now() - t0) / 1000;
const published = sim.eventsPublished - e0;
const rate = published / elapsed;
console.log(`simulator at max rate against a real gateway: ${Math.round(rate)} events/s (${published} events, ${sim.steps} steps in ${elapsed.toFixed(1)} s)`);
if (errors.length > 0) {
  console.error(`${errors.length} publish errors; the first:`, errors[0]);
  process.exitCode = 1;
} else if (published === 0) {
  console.error('the simulator published nothing');
  process.exitCode = 1;
}
