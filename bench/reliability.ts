/**
 * Faults under load, many rounds: the scenarios of packages/server/test/faults.test.ts
 * (which runs a few rounds of each in `npm test`), printed as a markdown table for
 * docs/RELIABILITY.md.
 *
 *   node --conditions=@tradesync/source --import tsx bench/reliability.ts                 # 50 kill -9 rounds, 10 Redis kills per mode, 5 cuts per kind
 *   node --conditions=@tradesync/source --import tsx bench/reliability.ts --rounds 5 --redis-rounds 2 --net-rounds 1
 *   node --conditions=@tradesync/source --import tsx bench/reliability.ts --only kill,redis-everysec,redis-always,blackhole,cut
 *
 * Real processes (a `tradesync serve` child for kill -9, private redis-servers on free
 * loopback ports, never 6379), real sockets; every wait is bounded. Progress goes to
 * stderr, the table to stdout. Exits 1 when a guarantee did not hold.
 */
import { parseArgs } from 'node:util';
import { gatewayKillRounds, networkFaultRounds, redisKillRounds, type FaultResult } from '@tradesync/testing/faults';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '50' },
    'redis-rounds': { type: 'string', default: '10' },
    'net-rounds': { type: 'string', default: '5' },
    'blackhole-ms': { type: 'string', default: '3000' },
    only: { type: 'string', default: 'kill,redis-everysec,redis-always,blackhole,cut' },
  },
});
const ROUNDS = Number(args.rounds);
const REDIS_ROUNDS = Number(args['redis-rounds']);
const NET_ROUNDS = Number(args['net-rounds']);
const BLACKHOLE_MS = Number(args['blackhole-ms']);
const ONLY = new Set(args.only.split(','));
const progress = (line: string) => process.stderr.write(`${line}\n`);
const base = 'node --conditions=@tradesync/source --import tsx bench/reliability.ts';

interface Row {
  readonly result: FaultResult;
  readonly command: string;
  /** Whether a lost acknowledged event breaks the guarantee of this row (not for everysec: see below). */
  readonly lossIsFailure: boolean;
}

const rows: Row[] = [];
if (ONLY.has('kill')) {
  rows.push({ result: await gatewayKillRounds({ rounds: ROUNDS, progress }), command: `${base} --only kill --rounds ${ROUNDS}`, lossIsFailure: true });
}
if (ONLY.has('redis-everysec')) {
  rows.push({
    result: await redisKillRounds({ rounds: REDIS_ROUNDS, appendfsync: 'everysec', progress }),
    command: `${base} --only redis-everysec --redis-rounds ${REDIS_ROUNDS}`,
    lossIsFailure: false,
  });
}
if (ONLY.has('redis-always')) {
  rows.push({
    result: await redisKillRounds({ rounds: REDIS_ROUNDS, appendfsync: 'always', progress }),
    command: `${base} --only redis-always --redis-rounds ${REDIS_ROUNDS}`,
    lossIsFailure: true,
  });
}
if (ONLY.has('blackhole')) {
  rows.push({
    result: await networkFaultRounds({ rounds: NET_ROUNDS, mode: 'blackhole', blackholeMs: BLACKHOLE_MS, progress }),
    command: `${base} --only blackhole --net-rounds ${NET_ROUNDS}`,
    lossIsFailure: true,
  });
}
if (ONLY.has('cut')) {
  rows.push({ result: await networkFaultRounds({ rounds: NET_ROUNDS, mode: 'cut', progress }), command: `${base} --only cut --net-rounds ${NET_ROUNDS}`, lossIsFailure: true });
}

const lines = [
  '| fault | runs | acknowledged | lost | duplicated | replicas equal | command |',
  '|---|---:|---:|---:|---:|---|---|',
  ...rows.map(
    ({ result: r, command }) =>
      `| ${r.fault} | ${r.runs} | ${r.acknowledged} | ${r.lost} | ${r.duplicated} | ${r.replicasEqual ? 'yes' : 'NO'}${r.epochChanged ? ' (new epoch)' : ''} | \`${command}\` |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
let failed = false;
for (const { result: r, lossIsFailure } of rows) {
  const problems = lossIsFailure ? r.problems : r.problems.filter((p) => !p.startsWith('lost:'));
  if (problems.length > 0 || r.duplicated > 0 || !r.replicasEqual || (lossIsFailure && r.lost > 0)) failed = true;
  process.stdout.write(`\n${r.fault}: ${(r.ms / 1000).toFixed(1)} s${r.problems.length > 0 ? `\n  ${r.problems.slice(0, 10).join('\n  ')}` : ''}\n`);
}
process.exitCode = failed ? 1 : 0;
