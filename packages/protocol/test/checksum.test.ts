import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, stateChecksum } from '../src/checksum.js';
import { applyEvents, initialState } from '../src/reducer.js';

/** JSON values whose numbers every JSON writer spells the same way (integers and short decimals). */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -1e9, max: 1e9 }),
    fc.integer({ min: -1e6, max: 1e6 }).map((n) => n / 8),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('value'), { maxKeys: 6 }),
  ),
})).value;

describe('canonicalJson', () => {
  it('sorts keys at every level, writes no whitespace and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1, 2], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,1,2]},"b":1}');
  });

  it('writes strings and numbers as JSON.stringify does, and leaves out undefined values', () => {
    expect(canonicalJson({ s: 'a"b\\c\n\u0001é€😀', n: -0, e: 1e21, f: 0.1, u: undefined, z: null, list: [undefined] })).toBe(
      '{"e":1e+21,"f":0.1,"list":[null],"n":0,"s":"a\\"b\\\\c\\n\\u0001é€😀","z":null}',
    );
  });

  it('orders keys by code point, not by UTF-16 code unit, past U+FFFF', () => {
    // U+FFFF is one code unit 0xFFFF; U+1F600 is the surrogate pair D83D DE00, which sorts first by code unit.
    expect(canonicalJson({ '\u{1F600}': 1, '\uFFFF': 2, '\uE000': 3, a: 4 })).toBe('{"a":4,"\uE000":3,"\uFFFF":2,"\u{1F600}":1}');
  });

  it('parses back to the same value, and does not depend on the order keys were inserted in', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        const text = canonicalJson(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        const reversed = JSON.parse(JSON.stringify(value), (_key, v: unknown) =>
          v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
        ) as unknown;
        expect(canonicalJson(reversed)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});

describe('stateChecksum', () => {
  it('is the CRC-32 of the canonical JSON as 8 lowercase hex digits', () => {
    // CRC-32 ("{}") and CRC-32 ("123456789") = cbf43926, the check value of the IEEE polynomial.
    expect(stateChecksum({})).toBe((crc32('{}') >>> 0).toString(16).padStart(8, '0'));
    expect(stateChecksum({}, () => 0xcbf43926)).toBe('cbf43926');
    expect(stateChecksum({}, () => 0x1f)).toBe('0000001f');
  });

  it('agrees with zlib for any state, including non-ASCII text', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        if (value === null || typeof value !== 'object') return;
        expect(stateChecksum(value)).toBe(stateChecksum(value, crc32));
      }),
      { numRuns: 300 },
    );
  });

  it('changes when any value changes, and not when only key order does', () => {
    const state = applyEvents(initialState('orders'), [
      { type: 'order:updated', data: { order_id: 'a', symbol: 'BTC-USD', side: 'buy', order_type: 'limit', status: 'open', quantity: '1', filled_quantity: '0', price: '100' } },
    ]);
    const moved = JSON.parse(JSON.stringify(state).replace('"100"', '"101"')) as object;
    expect(stateChecksum(moved)).not.toBe(stateChecksum(state));
    const reordered = { orders: Object.fromEntries(Object.entries(state.orders).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).reverse())])) };
    expect(stateChecksum(reordered)).toBe(stateChecksum(state));
  });
});

/**
 * The independent check: Python's json and zlib modules, which share no code with ours,
 * compute the same checksums for the same states.
 */
describe('stateChecksum against an independent implementation', () => {
  const python = ['python3', '/usr/bin/python3'].find((bin) => spawnSync(bin, ['-c', 'import json, zlib']).status === 0);

  it('matches json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) with zlib.crc32', () => {
    expect(python, 'python3 is needed for this check').toBeDefined();
    const orders: Record<string, unknown> = {};
    for (let i = 0; i < 500; i++) {
      orders[`ord-${i}`] = { order_id: `ord-${i}`, symbol: i % 2 ? 'BTC-USD' : 'ETH-USD', side: i % 3 ? 'buy' : 'sell', status: 'open', quantity: `${i}.25`, price: '65000.12', filled_quantity: '0', note: i % 7 ? '' : 'é€😀 "quoted" \\ tab\t' };
    }
    const states: object[] = [
      {},
      { orders },
      { last: { symbol: 'BTC-USD', price: '42000.5', timestamp: '2026-12-02T18:00:00.000Z' } },
      { indicators: { 'BTC-USD': { rsi_14: '55.1', ema_20: '41000' }, 'ETH-USD': { ema_20: '3100' } } },
      { '\u{1F600}': 1, '\uFFFF': 2, '\uE000': [3, null, true, false, -7, 0.5], a: { z: 'ü', y: '\u2028\u007f' } },
      ...fc.sample(jsonValue.filter((v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !hasLoneSurrogate(JSON.stringify(v))), { numRuns: 50, seed: 7 }).map((v) => v as object),
    ];
    const script = [
      'import json, sys, zlib',
      'for line in sys.stdin:',
      '    state = json.loads(line)',
      "    text = json.dumps(state, sort_keys=True, separators=(',', ':'), ensure_ascii=False)",
      "    print('%08x' % zlib.crc32(text.encode('utf-8')))",
    ].join('\n');
    const run = spawnSync(python!, ['-c', script], { input: states.map((s) => JSON.stringify(s)).join('\n') + '\n', encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual(states.map((s) => stateChecksum(s)));
  });
});

/** Python cannot write a lone surrogate as UTF-8 (JSON.stringify escapes one), so the sample leaves them out. */
function hasLoneSurrogate(text: string): boolean {
  return /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i.test(text);
}

describe('the checksums docs/PROTOCOL.md shows', () => {
  it('are the checksums of the snapshots shown with them', () => {
    const doc = readFileSync(fileURLToPath(new URL('../../../docs/PROTOCOL.md', import.meta.url)), 'utf8');
    const shown = [...doc.matchAll(/```json\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((block) => block.includes('"checksum"') && block.includes('"snapshot"'))
      .map((block) => JSON.parse(block) as { checksum: string; snapshot: { state: object } });
    expect(shown.length).toBeGreaterThanOrEqual(2);
    for (const message of shown) expect(message.checksum).toBe(stateChecksum(message.snapshot.state));
  });
});
