import type { Timers } from './timers.js';

/**
 * A small finite state machine in the style of Liveblocks' `lib/fsm.ts`: named states,
 * a union of events, transitions declared per state, enter handlers that return their
 * cleanup, and timed transitions (an event sent after a delay, cancelled on leaving).
 *
 * - Every change of state goes through `#moveTo`, which runs cleanups, enter handlers,
 *   then tells the listeners `(from, to, event)`.
 * - An enter handler may be registered for a group of states: it runs when the machine
 *   enters the group and its cleanup when it leaves the group (moving between two
 *   states of the group runs neither), so "the socket is open" spans several states.
 * - Events sent while a transition runs (from an enter handler, a cleanup, a listener)
 *   are queued and handled after it, so no handler ever sees a half-made transition.
 * - An event with no transition from the current state is ignored: late timers and
 *   late socket callbacks are normal, not errors.
 */

/** A transition's target: a state, or a function of the event and context that picks one (`null`: ignore the event). */
export type Target<S extends string, E, C> = S | ((event: E, context: C) => S | null);

type TransitionMap<S extends string, E extends { readonly type: string }, C> = {
  readonly [T in E['type']]?: Target<S, Extract<E, { type: T }>, C>;
};

type Cleanup = () => void;

interface EnterHandler<S extends string, C> {
  readonly states: ReadonlySet<S>;
  readonly enter: (context: C) => Cleanup | void;
  cleanup: Cleanup | undefined;
}

export type TransitionListener<S extends string, E> = (from: S, to: S, event: E) => void;

export class StateMachine<S extends string, E extends { readonly type: string }, C> {
  #state: S;
  readonly #transitions = new Map<S, Map<string, Target<S, E, C>>>();
  readonly #enters: Array<EnterHandler<S, C>> = [];
  readonly #listeners = new Set<TransitionListener<S, E>>();
  readonly #queue: E[] = [];
  #busy = false;

  constructor(
    initial: S,
    readonly context: C,
    private readonly timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>,
  ) {
    this.#state = initial;
  }

  get state(): S {
    return this.#state;
  }

  addTransitions(from: S | readonly S[], map: TransitionMap<S, E, C>): this {
    for (const state of typeof from === 'string' ? [from] : from) {
      let table = this.#transitions.get(state);
      if (!table) this.#transitions.set(state, (table = new Map<string, Target<S, E, C>>()));
      for (const [type, target] of Object.entries(map) as Array<[string, Target<S, E, C> | undefined]>) {
        if (target !== undefined) table.set(type, target);
      }
    }
    return this;
  }

  /** Runs `enter` on entering any of `states` (from outside them); its cleanup on leaving them. */
  onEnter(states: S | readonly S[], enter: (context: C) => Cleanup | void): this {
    this.#enters.push({ states: new Set(typeof states === 'string' ? [states] : states), enter, cleanup: undefined });
    return this;
  }

  /** Sends `event` after `delayMs` (read on entering) unless the machine left `state` first. */
  addTimedTransition(state: S, delayMs: (context: C) => number, event: E): this {
    return this.onEnter(state, (context) => {
      const timer = this.timers.setTimeout(() => this.send(event), delayMs(context));
      return () => this.timers.clearTimeout(timer);
    });
  }

  /** Hears every change of state, after the enter handlers ran. */
  onTransition(listener: TransitionListener<S, E>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  send(event: E): void {
    this.#queue.push(event);
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) this.#handle(next);
    } finally {
      this.#busy = false;
    }
  }

  #handle(event: E): void {
    const target = this.#transitions.get(this.#state)?.get(event.type);
    if (target === undefined) return;
    // The map is keyed by `event.type`, so the function stored there takes this event.
    const next = typeof target === 'function' ? target(event, this.context) : target;
    if (next === null || next === this.#state) return;
    this.#moveTo(next, event);
  }

  #moveTo(next: S, event: E): void {
    const from = this.#state;
    for (const handler of [...this.#enters].reverse()) {
      if (handler.states.has(from) && !handler.states.has(next)) {
        const cleanup = handler.cleanup;
        handler.cleanup = undefined;
        cleanup?.();
      }
    }
    this.#state = next;
    for (const handler of this.#enters) {
      if (!handler.states.has(from) && handler.states.has(next)) handler.cleanup = handler.enter(this.context) ?? undefined;
    }
    for (const listener of [...this.#listeners]) listener(from, next, event);
  }
}
