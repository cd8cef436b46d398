/**
 * A tiny typed event emitter that runs in browsers and Node alike. A listener that
 * throws never stops the others: the error goes to `onListenerError`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- listeners of every event share one set
type Listener = (...args: any[]) => void;

export class Emitter<Events extends Record<string, unknown[]>> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>();

  constructor(private readonly onListenerError: (error: unknown, event: string) => void) {}

  on<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as Listener);
    return () => this.off(event, listener);
  }

  off<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): void {
    this.#listeners.get(event)?.delete(listener as Listener);
  }

  emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...(args as unknown[]));
      } catch (error) {
        this.onListenerError(error, String(event));
      }
    }
  }
}
