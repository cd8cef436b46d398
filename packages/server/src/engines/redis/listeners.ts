import type { StoredEvent, StreamHead } from '../engine.js';

interface AppendWaiter {
  readonly epoch: string;
  readonly offset: number;
  readonly done: () => void;
}

/**
 * Who hears the engine: `onAppend` and `onReset` listeners, and appends of this node
 * waiting until their own events were delivered here (so a reader of the gateway state
 * right after a publish sees it). A listener that throws never fails an append.
 */
export class Listeners {
  readonly #append = new Set<(events: readonly StoredEvent[]) => void>();
  readonly #reset = new Set<(stream: string, head: StreamHead) => void>();
  readonly #waiters = new Map<string, AppendWaiter[]>();

  constructor(
    /** Whether listeners heard `offset` of `epoch` of a stream (or never will: the epoch is gone). */
    private readonly isDelivered: (stream: string, epoch: string, offset: number) => boolean,
    private readonly onListenerError: ((error: unknown) => void) | undefined,
  ) {}

  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void {
    this.#append.add(listener);
    return () => this.#append.delete(listener);
  }

  onReset(listener: (stream: string, head: StreamHead) => void): () => void {
    this.#reset.add(listener);
    return () => this.#reset.delete(listener);
  }

  deliver(events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    // A copy: a listener may unsubscribe (itself or another) while we iterate.
    for (const listener of [...this.#append]) {
      try {
        listener(events);
      } catch (error) {
        this.onListenerError?.(error);
      }
    }
    if (this.#waiters.size === 0) return;
    let last: string | undefined;
    for (const event of events) {
      if (event.stream !== last) this.release(event.stream);
      last = event.stream;
    }
  }

  reset(stream: string, head: StreamHead): void {
    this.release(stream);
    for (const listener of [...this.#reset]) {
      try {
        listener(stream, head);
      } catch (error) {
        this.onListenerError?.(error);
      }
    }
  }

  /**
   * Resolves when this node delivered the appended offsets, or after `timeoutMs` (the
   * notification is late or lost: the events are stored; `onLate` reads the log).
   */
  delivered(targets: ReadonlyArray<{ stream: string; epoch: string; offset: number }>, timeoutMs: number, onLate: (stream: string) => void): Promise<void> {
    const outstanding = targets.filter((t) => !this.isDelivered(t.stream, t.epoch, t.offset));
    if (outstanding.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let left = outstanding.length;
      const timer = setTimeout(() => {
        left = 0;
        for (const t of outstanding) onLate(t.stream);
        resolve();
      }, timeoutMs);
      const done = () => {
        if (left > 0 && --left === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const t of outstanding) {
        let list = this.#waiters.get(t.stream);
        if (!list) this.#waiters.set(t.stream, (list = []));
        list.push({ epoch: t.epoch, offset: t.offset, done });
      }
    });
  }

  /** Resolves the waiters of a stream that are delivered now. */
  release(stream: string): void {
    const list = this.#waiters.get(stream);
    if (!list) return;
    const keep = list.filter((w) => {
      if (!this.isDelivered(stream, w.epoch, w.offset)) return true;
      w.done();
      return false;
    });
    if (keep.length === 0) this.#waiters.delete(stream);
    else this.#waiters.set(stream, keep);
  }

  /** At close: nobody waits any more. */
  releaseAll(): void {
    for (const waiters of this.#waiters.values()) for (const w of waiters) w.done();
    this.#waiters.clear();
  }
}
