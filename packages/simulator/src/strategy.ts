import type { EventInput, StrategyState } from '@tradesync/protocol';

/**
 * The strategy instance lifecycle. Every change goes through `transition`, which
 * checks this table, so an illegal move is a bug that throws, never a wrong event.
 *
 *   MONITORING → SIGNAL_DETECTED → ENTRY_PENDING → POSITION_OPEN → EXITING → MONITORING
 * plus the ways back: a signal rejected or expired, an entry cancelled, an exit
 * order cancelled while the position is still open.
 */
export const TRANSITIONS: Readonly<Record<StrategyState, readonly StrategyState[]>> = {
  MONITORING: ['SIGNAL_DETECTED'],
  SIGNAL_DETECTED: ['ENTRY_PENDING', 'MONITORING'],
  ENTRY_PENDING: ['POSITION_OPEN', 'MONITORING'],
  POSITION_OPEN: ['EXITING'],
  EXITING: ['MONITORING', 'POSITION_OPEN'],
};

export function isLegalTransition(from: StrategyState, to: StrategyState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** How far along the entry conditions of MONITORING an instance is (pattern, volume, risk). */
const CONDITIONS_TOTAL = 3;

export interface InstanceRecord {
  readonly instance_id: string;
  readonly session_id: string;
  readonly strategy: string;
  readonly symbol: string;
  state: StrategyState;
  entered_at: string;
  signal_id: string | null;
  order_id: string | null;
  /** A newer session started: leave when next back in MONITORING. */
  retiring: boolean;
}

export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';
}

/** The whole instance as `instance_added` carries it. */
export function instanceEntity(i: InstanceRecord): Record<string, unknown> {
  return {
    instance_id: i.instance_id,
    session_id: i.session_id,
    strategy: i.strategy,
    symbol: i.symbol,
    state: i.state,
    entered_at: i.entered_at,
    signal_id: i.signal_id,
    order_id: i.order_id,
    conditions_met: i.state === 'MONITORING' ? 0 : CONDITIONS_TOTAL,
    conditions_total: CONDITIONS_TOTAL,
  };
}

export function newInstance(sessionId: string, symbol: string, now: string): InstanceRecord {
  return {
    instance_id: `${sessionId}:${symbol}`,
    session_id: sessionId,
    strategy: 'wyckoff',
    symbol,
    state: 'MONITORING',
    entered_at: now,
    signal_id: null,
    order_id: null,
    retiring: false,
  };
}

/**
 * Moves an instance to `to`, appending the `state_change` to `out`. `fields` are the
 * extra facts of this change (reason, progress, ids).
 */
export function transition(instance: InstanceRecord, to: StrategyState, now: string, stream: string, out: EventInput[], fields: Record<string, unknown> = {}): void {
  const from = instance.state;
  if (!isLegalTransition(from, to)) throw new IllegalTransitionError(`${instance.instance_id}: ${from} → ${to} is not a legal transition`);
  instance.state = to;
  instance.entered_at = now;
  if (to === 'MONITORING') {
    instance.signal_id = null;
    instance.order_id = null;
  }
  out.push({
    stream,
    type: 'state_change',
    data: {
      instance_id: instance.instance_id,
      state: to,
      previous_state: from,
      session_id: instance.session_id,
      symbol: instance.symbol,
      strategy: instance.strategy,
      entered_at: now,
      signal_id: instance.signal_id,
      order_id: instance.order_id,
      conditions_met: to === 'MONITORING' ? 0 : CONDITIONS_TOTAL,
      conditions_total: CONDITIONS_TOTAL,
      ...fields,
    },
  });
}
