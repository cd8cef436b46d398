import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  applyEvents,
  CLOSED_ORDER_STATUSES,
  EVENT_TYPES,
  eventTypesOf,
  initialState,
  STATE_LIMITS,
  stateChecksum,
  STREAM_KINDS,
  type ReducibleEvent,
  type StreamKind,
} from '../src/index.js';
import { ev, instance, order, signal } from './helpers.js';

/**
 * Exports the reducer's behaviour as data, for SDKs in other languages (the Python SDK
 * runs every case through its own reducer): fixtures/reducer-cases.json holds, for each
 * case, a stream kind, the state before, the events, and the state and checksum this
 * reducer gives. The file is checked here against what the reducer gives today, so a
 * change of the reducer that is not exported fails this test.
 *
 * The cases follow reducer.test.ts, plus what an implementation in another language
 * gets wrong first: JavaScript's key order (integer-like keys first, ascending) where a
 * bound drops the "oldest" keys, `String()` of values that are not strings, strict
 * equality of alert ids, and numbers and key order in the canonical JSON of checksums.
 * Seeded random sequences over a small pool of ids cover the interleavings.
 */

const FILE = fileURLToPath(new URL('./fixtures/reducer-cases.json', import.meta.url));
const REGENERATE = 'UPDATE_REDUCER_FIXTURES=1 npx vitest run packages/protocol/test/reducer-fixtures.test.ts';

interface CaseSpec {
  readonly name: string;
  readonly kind: StreamKind;
  /** Events that build the state the case starts from. */
  readonly setup?: readonly ReducibleEvent[];
  readonly events: readonly ReducibleEvent[];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const tick = (price: string, extra: Record<string, unknown> = {}) => ({ symbol: 'BTC-USD', price, timestamp: '2024-01-01T00:00:00Z', ...extra });
const pattern = (id: string, extra: Record<string, unknown> = {}) => ({ id, symbol: 'BTC-USD', pattern_type: 'SOS', confidence_score: 70, phase: 'D', test_confirmed: false, ...extra });
const { signals: SIGNALS, patterns: PATTERNS, alerts: ALERTS } = STATE_LIMITS;
const slack = (limit: number) => Math.ceil(limit / 10);

const CASES: readonly CaseSpec[] = [
  { name: 'orders: an open order is added under its order_id', kind: 'orders', events: [ev('order:updated', order())] },
  {
    name: 'orders: an update replaces the whole order, in place',
    kind: 'orders',
    setup: [ev('order:updated', order()), ev('order:updated', order({ order_id: 'o-2' }))],
    events: [ev('order:updated', order({ status: 'partially_filled', filled_quantity: '0.2', note: 'x' }))],
  },
  {
    name: 'orders: order:closed removes the order; an unknown one changes nothing',
    kind: 'orders',
    setup: [ev('order:updated', order()), ev('order:updated', order({ order_id: 'o-2' }))],
    events: [ev('order:closed', { order_id: 'o-1', status: 'cancelled' }), ev('order:closed', { order_id: 'nope', status: 'filled' })],
  },
  {
    name: 'orders: an update with a closed status removes the order, and a closed order is never added',
    kind: 'orders',
    setup: ['a', 'b', 'c', 'd'].map((id) => ev('order:updated', order({ order_id: id }))),
    events: [
      ...['filled', 'cancelled', 'rejected', 'expired'].map((status, i) => ev('order:updated', order({ order_id: 'abcd'[i], status }))),
      ev('order:updated', order({ order_id: 'e', status: 'filled' })),
    ],
  },
  {
    name: 'orders: a removed order comes back at the end of the key order',
    kind: 'orders',
    setup: [ev('order:updated', order({ order_id: 'x' })), ev('order:updated', order({ order_id: 'y' }))],
    events: [ev('order:closed', { order_id: 'x', status: 'filled' }), ev('order:updated', order({ order_id: 'x' }))],
  },
  {
    name: 'portfolio: balances, positions and campaigns are upserted by key; totals replaced wholesale',
    kind: 'portfolio',
    events: [
      ev('balance:updated', { currency: 'USD', total: '1000.00', available: '900.00', reserved: '100.00' }),
      ev('balance:updated', { currency: 'EUR', total: '5', available: '5', reserved: '0' }),
      ev('balance:updated', { currency: 'USD', total: '2000.00', available: '1900.00', reserved: '100.00' }),
      ev('position:updated', { symbol: 'BTC-USD', side: 'long', quantity: '1', avg_price: '40000', mark_price: '42000', unrealized_pnl: '2000', leverage: 3 }),
      ev('position:updated', { symbol: 'ETH-USD', side: 'short', quantity: '2', avg_price: '2000', mark_price: '1900', unrealized_pnl: '200' }),
      ev('portfolio:updated', { total_value_usd: '1', unrealized_pnl: '0', realized_pnl: '0', total_heat: '0', available_capacity: '1', extra: 'x' }),
      ev('portfolio:updated', { total_value_usd: '50000', unrealized_pnl: '2000', realized_pnl: '-10.5', total_heat: '0.1', available_capacity: '0.9' }),
      ev('campaign:updated', { campaign_id: 'c-1', risk_allocated: '0.02', positions_count: 1 }),
      ev('campaign:updated', { campaign_id: 'c-1', risk_allocated: '0.04', positions_count: 2 }),
    ],
  },
  {
    name: 'portfolio: position:closed removes the position; an unknown symbol changes nothing',
    kind: 'portfolio',
    setup: [
      ev('position:updated', { symbol: 'BTC-USD', side: 'long', quantity: '1', avg_price: '1', mark_price: '1', unrealized_pnl: '0' }),
      ev('position:updated', { symbol: 'ETH-USD', side: 'long', quantity: '1', avg_price: '1', mark_price: '1', unrealized_pnl: '0' }),
    ],
    events: [ev('position:closed', { symbol: 'BTC-USD' }), ev('position:closed', { symbol: 'SOL-USD' })],
  },
  {
    name: 'signals: executed and rejected merge into the known signal and set its status (a status in the data wins)',
    kind: 'signals',
    setup: [ev('signal:new', signal()), ev('signal:new', signal({ id: 'sig-2' })), ev('signal:new', signal({ id: 'sig-3' }))],
    events: [
      ev('signal:executed', { id: 'sig-1', executed_at: '2024-01-01T00:00:01Z' }),
      ev('signal:rejected', { id: 'sig-2', reason: 'risk' }),
      ev('signal:executed', { id: 'sig-3', status: 'expired' }),
    ],
  },
  {
    name: 'signals: a change for an unknown signal, or one named like an Object.prototype member, is ignored',
    kind: 'signals',
    setup: [ev('signal:new', signal())],
    events: ['sig-unknown', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'].flatMap((id) => [ev('signal:executed', { id }), ev('signal:rejected', { id })]),
  },
  {
    name: 'signals: patterns are upserted by id',
    kind: 'signals',
    events: [ev('pattern_detected', pattern('p-1')), ev('pattern_detected', pattern('p-2')), ev('pattern_detected', pattern('p-1', { test_confirmed: true }))],
  },
  {
    name: 'signals: past the limit plus a tenth, the oldest signals are dropped down to the limit at once',
    kind: 'signals',
    setup: range(SIGNALS + slack(SIGNALS)).map((i) => ev('signal:new', { id: `sig-${i}` })),
    events: [ev('signal:new', { id: 'sig-newest' })],
  },
  {
    name: 'signals: a batch of twice the limit keeps at most the limit plus a tenth',
    kind: 'signals',
    events: range(SIGNALS * 2 + 7).map((i) => ev('signal:new', { id: `s${i}` })),
  },
  {
    name: 'signals: the patterns bound drops the first keys in JavaScript order, integer-like keys first and ascending',
    kind: 'signals',
    events: [
      ...range(PATTERNS + slack(PATTERNS) + 1)
        .reverse()
        .map((i) => ev('pattern_detected', { id: String(i) })),
      ev('pattern_detected', { id: 'p-named' }),
    ],
  },
  {
    name: 'signals: integer-like ids come first in key order; others keep their insertion order',
    kind: 'signals',
    events: ['b', '10', 'a', '2', '01', '4294967294', '4294967295', '-1', '1.5', '0'].map((id) => ev('signal:new', signal({ id }))),
  },
  {
    name: 'state_machines: added, changed (merged into the known instance), changes to unknown instances ignored',
    kind: 'state_machines',
    setup: [ev('instance_added', instance()), ev('instance_added', instance({ instance_id: 'i-2' }))],
    events: [
      ev('state_change', { instance_id: 'i-1', state: 'SIGNAL_DETECTED', previous_state: 'MONITORING', entered_at: '2024-01-01T00:00:00Z' }),
      ev('state_change', { instance_id: 'i-unknown', state: 'EXITING', previous_state: null }),
      ...['constructor', 'toString', 'valueOf'].map((id) => ev('state_change', { instance_id: id, state: 'EXITING', previous_state: null })),
      ev('instance_removed', { instance_id: 'i-2' }),
      ev('instance_removed', { instance_id: 'i-9' }),
    ],
  },
  {
    name: 'state_machines: full_update replaces every instance, and empties them when it holds none',
    kind: 'state_machines',
    setup: [ev('instance_added', instance())],
    events: [
      ev('full_update', { instances: [instance({ instance_id: 'i-3' }), instance({ instance_id: 'i-2', state: 'POSITION_OPEN' }), instance({ instance_id: '7' })] }),
      ev('state_change', { instance_id: 'i-2', state: 'EXITING', previous_state: 'POSITION_OPEN' }),
    ],
  },
  {
    name: 'state_machines: a full_update with no instances empties the state',
    kind: 'state_machines',
    setup: [ev('instance_added', instance())],
    events: [ev('full_update', { instances: [] })],
  },
  {
    name: 'indicators: each value is stored under its symbol and name',
    kind: 'indicators',
    events: [
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'rsi', value: '55.2' }),
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'atr', value: '120' }),
      ev('indicator:updated', { symbol: 'ETH-USD', name: 'rsi', value: '40' }),
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'rsi', value: '56' }),
      ev('indicator:updated', { symbol: 'constructor', name: 'valueOf', value: '1' }),
    ],
  },
  {
    name: 'indicators: values and keys that are not strings are written as String() writes them',
    kind: 'indicators',
    events: [
      ...[61.2, 0.1 + 0.2, 1e-7, 0.000001, 1.5e-10, 1e21, 123456789012345680000, 2 ** 53 + 2, -42, 0, 100, 1.5e300, true, false, null, [1, null, 'a', [2, 3]], { a: 1 }].map(
        (value, i) => ev('indicator:updated', { symbol: 'X', name: `v${i}`, value }),
      ),
      ev('indicator:updated', { symbol: 'X', name: 'missing' }),
      ev('indicator:updated', { symbol: 5, name: 1.5, value: '1' }),
      ev('indicator:updated', { symbol: null, name: true, value: '2' }),
    ],
  },
  {
    name: 'alerts: appended with their event type; the same id is replaced in place',
    kind: 'alerts',
    events: [
      ev('liquidation_alert', { id: 'a-1', severity: 'critical', message: 'near liquidation' }),
      ev('reconciliation_mismatch', { id: 'a-2', severity: 'warning', alert_type: 'ignored' }),
      ev('reconciliation_mismatch', { alert_type: 'first', id: 'a-1', severity: 'info' }),
    ],
  },
  {
    name: 'alerts: ids compare strictly (1 is not "1"; two alerts without an id are the same alert)',
    kind: 'alerts',
    events: [
      ev('liquidation_alert', { id: 1 }),
      ev('liquidation_alert', { id: '1' }),
      ev('liquidation_alert', { id: 1.0, message: 'same as 1' }),
      ev('liquidation_alert', { message: 'no id' }),
      ev('liquidation_alert', { message: 'no id either' }),
      ev('liquidation_alert', { id: null }),
      ev('liquidation_alert', { id: true }),
      ev('liquidation_alert', { id: null, message: 'null again' }),
    ],
  },
  {
    name: 'alerts: only the newest alerts are kept',
    kind: 'alerts',
    setup: range(ALERTS).map((i) => ev('liquidation_alert', { id: `a-${i}` })),
    events: range(7).map((i) => ev('liquidation_alert', { id: `b-${i}` })),
  },
  { name: 'market: only the last tick is kept', kind: 'market', events: [ev('market:tick', tick('42000.50')), ev('market:tick', tick('42001.00', { volume: '1.5' }))] },
  {
    name: 'any kind: an unknown event type, or an Object.prototype member as a type, changes nothing',
    kind: 'orders',
    setup: [ev('order:updated', order())],
    events: [ev('nonsense', { order_id: 'x' }), ev('constructor', {}), ev('__proto__', {}), ev('toString', {}), ev('hasOwnProperty', {})],
  },
  {
    name: 'checksum: keys sorted by code point at every level, numbers and strings as JSON.stringify writes them',
    kind: 'signals',
    events: [
      ...['z', 'é', 'Z', '\u{1F600}', '\uFFFD', '\uE000', 'a\u0000', '10', '9'].map((id, i) =>
        ev('signal:new', signal({ id, confidence_score: [0.0000001, 84.25, 1e21, 0.1 + 0.2, 5e-324, 100, 2.5e-7, 1e-6, 33][i] })),
      ),
      ev('signal:new', signal({ id: 'text', note: 'quote " backslash \\ newline \n tab \t bell \u0007 del \u007f sep \u2028 emoji \u{1F4B0}', nested: { b: [1, { d: 1, c: 2 }], a: null } })),
    ],
  },
  ...randomCases(),
];

/* ---------------------------------------------------------------------------
 * Seeded random sequences: a tiny pool of ids (one integer-like, one shadowing an
 * Object.prototype member) so that upserts, removals and merges collide often.
 * ------------------------------------------------------------------------- */

function randomCases(): CaseSpec[] {
  let seed = 20240601;
  /** mulberry32: a fixed generator, so the fixture file does not depend on a library's. */
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const id = () => pick(['a', 'b', '7', 'constructor']);
  const symbol = () => pick(['BTC-USD', 'ETH-USD', 'toString']);
  const decimal = () => String(Math.floor(random() * 100000) / 100);
  const status = () => pick(['pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired']);
  const state = () => pick(['MONITORING', 'SIGNAL_DETECTED', 'ENTRY_PENDING', 'POSITION_OPEN', 'EXITING']);
  const inst = () => instance({ instance_id: id(), symbol: symbol(), state: state() });
  const data: Record<string, () => Record<string, unknown>> = {
    'order:updated': () => order({ order_id: id(), symbol: symbol(), quantity: decimal(), status: status() }),
    'order:closed': () => ({ order_id: id(), status: status() }),
    'balance:updated': () => ({ currency: pick(['USD', 'EUR', '1']), total: decimal(), available: decimal(), reserved: decimal() }),
    'position:updated': () => ({ symbol: symbol(), side: pick(['long', 'short']), quantity: decimal(), avg_price: decimal(), mark_price: decimal(), unrealized_pnl: decimal() }),
    'position:closed': () => ({ symbol: symbol() }),
    'portfolio:updated': () => ({ total_value_usd: decimal(), unrealized_pnl: decimal(), realized_pnl: decimal(), total_heat: decimal(), available_capacity: decimal() }),
    'campaign:updated': () => ({ campaign_id: id(), risk_allocated: decimal(), positions_count: Math.floor(random() * 5) }),
    'signal:new': () => signal({ id: id(), symbol: symbol(), confidence_score: Math.floor(random() * 100) }),
    'signal:executed': () => ({ id: id(), executed_at: '2024-01-01T00:00:01Z' }),
    'signal:rejected': () => ({ id: id(), reason: pick(['risk', 'manual']) }),
    pattern_detected: () => pattern(id(), { test_confirmed: random() < 0.5 }),
    instance_added: inst,
    state_change: () => ({ instance_id: id(), state: state(), previous_state: random() < 0.3 ? null : state() }),
    instance_removed: () => ({ instance_id: id() }),
    full_update: () => ({ instances: range(Math.floor(random() * 3)).map(inst) }),
    'indicator:updated': () => ({ symbol: symbol(), name: pick(['rsi', 'atr', 'valueOf']), value: decimal() }),
    liquidation_alert: () => ({ id: id(), severity: pick(['info', 'warning', 'critical']) }),
    reconciliation_mismatch: () => ({ id: id(), message: decimal() }),
    'market:tick': () => tick(decimal()),
  };
  return STREAM_KINDS.flatMap((kind) =>
    range(6).map((n) => ({
      name: `random: ${kind} #${n + 1}`,
      kind,
      events: range(10 + Math.floor(random() * 30)).map(() => {
        const type = pick(eventTypesOf(kind));
        return ev(type, data[type]!());
      }),
    })),
  );
}

/* ------------------------------------------------------------------------- */

interface ExportedCase {
  name: string;
  kind: StreamKind;
  initial: unknown;
  events: readonly ReducibleEvent[];
  expected: unknown;
  checksum: string;
}

function exportCase(spec: CaseSpec): ExportedCase {
  const initial = applyEvents(initialState(spec.kind), spec.setup ?? []);
  const expected = applyEvents(initial, spec.events);
  return { name: spec.name, kind: spec.kind, initial, events: spec.events, expected, checksum: stateChecksum(expected) };
}

/** One case per line: the file diffs by case, and stays small enough to read in an editor. */
function render(cases: readonly ExportedCase[]): string {
  const constants = {
    state_limits: STATE_LIMITS,
    closed_order_statuses: [...CLOSED_ORDER_STATUSES],
    event_kinds: Object.fromEntries(Object.entries(EVENT_TYPES).map(([type, { kind }]) => [type, kind])),
  };
  const head = JSON.stringify(constants).slice(0, -1);
  return `${head},\n"cases": [\n${cases.map((c) => JSON.stringify(c)).join(',\n')}\n]}\n`;
}

describe('the exported reducer fixtures', () => {
  const cases = CASES.map(exportCase);

  it('give every case a distinct name and cover every event type', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    const types = new Set(cases.flatMap((c) => c.events.map((e) => e.type)));
    for (const type of Object.keys(EVENT_TYPES)) expect(types, type).toContain(type);
  });

  it('are what the reducer gives today (fixtures/reducer-cases.json)', () => {
    const text = render(cases);
    if (process.env.UPDATE_REDUCER_FIXTURES === '1') writeFileSync(FILE, text);
    let current = '';
    try {
      current = readFileSync(FILE, 'utf8');
    } catch {
      // Missing: reported below like a stale file.
    }
    if (current !== text) {
      const stale = cases.filter((c, i) => current.split('\n')[i + 2]?.replace(/,$/, '') !== JSON.stringify(c)).map((c) => c.name);
      expect.fail(`fixtures/reducer-cases.json is out of date (${stale.slice(0, 3).join('; ') || 'header'}…): regenerate it with ${REGENERATE}`);
    }
  });
});
