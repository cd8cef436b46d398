import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StateMachine } from '../src/fsm.js';
import { systemTimers } from '../src/timers.js';

type S = 'a' | 'b' | 'c' | 'd';
type E = { type: 'GO'; to: S } | { type: 'TICK' } | { type: 'NOOP' };

function machine() {
  const log: string[] = [];
  const m = new StateMachine<S, E, { n: number }>('a', { n: 0 }, systemTimers);
  m.addTransitions(['a', 'b', 'c', 'd'], { GO: (event) => event.to });
  m.onTransition((from, to, event) => log.push(`${from}->${to} on ${event.type}`));
  return { m, log };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('the state machine', () => {
  it('moves through one transition point and tells listeners the old and new state', () => {
    const { m, log } = machine();
    m.send({ type: 'GO', to: 'b' });
    m.send({ type: 'GO', to: 'c' });
    expect(m.state).toBe('c');
    expect(log).toEqual(['a->b on GO', 'b->c on GO']);
  });

  it('ignores events with no transition from the current state, and transitions to the same state', () => {
    const { m, log } = machine();
    m.send({ type: 'NOOP' });
    m.send({ type: 'GO', to: 'a' });
    expect(m.state).toBe('a');
    expect(log).toEqual([]);
  });

  it('runs an enter handler on entering a group of states and its cleanup only on leaving the group', () => {
    const { m } = machine();
    const seen: string[] = [];
    m.onEnter(['b', 'c'], () => {
      seen.push('enter');
      return () => seen.push('cleanup');
    });
    m.send({ type: 'GO', to: 'b' });
    m.send({ type: 'GO', to: 'c' });
    expect(seen).toEqual(['enter']);
    m.send({ type: 'GO', to: 'd' });
    expect(seen).toEqual(['enter', 'cleanup']);
  });

  it('sends a timed event after its delay, and never once the state was left', () => {
    const { m } = machine();
    m.addTransitions('b', { TICK: 'c' });
    m.addTimedTransition('b', () => 1000, { type: 'TICK' });
    m.send({ type: 'GO', to: 'b' });
    vi.advanceTimersByTime(999);
    expect(m.state).toBe('b');
    vi.advanceTimersByTime(1);
    expect(m.state).toBe('c');
    m.send({ type: 'GO', to: 'b' });
    m.send({ type: 'GO', to: 'd' });
    vi.advanceTimersByTime(5000);
    expect(m.state).toBe('d');
  });

  it('queues events sent while a transition runs, so no handler sees a half-made transition', () => {
    const { m, log } = machine();
    m.onEnter('b', () => {
      m.send({ type: 'GO', to: 'c' });
      // Still in b: the event waits for this transition to finish.
      expect(m.state).toBe('b');
    });
    m.send({ type: 'GO', to: 'b' });
    expect(m.state).toBe('c');
    expect(log).toEqual(['a->b on GO', 'b->c on GO']);
  });
});
