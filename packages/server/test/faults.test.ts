import { describe, expect, it } from 'vitest';
import { gatewayKillRounds, networkFaultRounds, redisKillRounds, type FaultResult } from '@tradesync/testing/faults';

/*
 * Faults under load, each bounded in rounds and time (bench/reliability.ts runs the
 * same scenarios for many more rounds). Producers publish over HTTP as fast as they
 * can with a unique id in every event; afterwards the whole log is read back: no
 * acknowledged event may be missing or stored twice, offsets stay dense, and client
 * replicas equal the server state.
 */

const ROUNDS = Number(process.env['TRADESYNC_FAULT_ROUNDS'] ?? 5);

function expectClean(result: FaultResult): void {
  expect(result.problems).toEqual([]);
  expect(result.acknowledged).toBeGreaterThan(0);
  expect({ lost: result.lost, duplicated: result.duplicated, replicasEqual: result.replicasEqual }).toEqual({ lost: 0, duplicated: 0, replicasEqual: true });
}

describe('faults under load', () => {
  it(`kill -9 of the embedded gateway, ${ROUNDS} rounds: nothing acknowledged lost or duplicated, offsets dense, a resumed replica equals the log`, { timeout: 60_000 + ROUNDS * 15_000 }, async () => {
    expectClean(await gatewayKillRounds({ rounds: ROUNDS }));
  });

  it('SIGKILL of Redis (appendonly yes, appendfsync always) restarted on its data dir, 2 rounds: nothing acknowledged lost, the replica equals the node', { timeout: 90_000 }, async () => {
    expectClean(await redisKillRounds({ rounds: 2, appendfsync: 'always' }));
  });

  it('SIGKILL of Redis (appendonly yes, everysec) restarted on its data dir, 2 rounds: no duplicate, no silent rewrite, the replica equals the node', { timeout: 90_000 }, async () => {
    // everysec may lose the last acknowledged writes even on a process kill: Redis
    // postpones the AOF write while a background fsync runs, and replies meanwhile.
    // What must hold regardless: the loss is declared (new epoch) and no replica is stale.
    const result = await redisKillRounds({ rounds: 2, appendfsync: 'everysec' });
    expect(result.problems.filter((p) => !p.startsWith('lost:'))).toEqual([]);
    expect({ duplicated: result.duplicated, replicasEqual: result.replicasEqual }).toEqual({ duplicated: 0, replicasEqual: true });
    if (result.lost > 0) expect(result.epochChanged).toBe(true);
  });

  it('a 3 s network blackhole between a node and Redis, then heal: nothing acknowledged lost, replicas on both nodes equal the log', { timeout: 90_000 }, async () => {
    expectClean(await networkFaultRounds({ rounds: 1, mode: 'blackhole', blackholeMs: 3000 }));
  });

  it('network cuts (every connection reset) between a node and Redis, 2 rounds: nothing acknowledged lost, replicas on both nodes equal the log', { timeout: 90_000 }, async () => {
    expectClean(await networkFaultRounds({ rounds: 2, mode: 'cut' }));
  });
});
