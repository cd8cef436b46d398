/**
 * A real engine (embedded SQLite, Redis) with some streams made unreadable: the fault
 * behind a partial sync failure. Reads of a broken stream (`head`, `read`,
 * `loadSnapshot`) fail with EngineUnavailableError, as a shared engine's do when the
 * shard or replica holding it is gone; every other stream and every append work as
 * before. `breakStreams` also reports the broken streams' history as replaced, as a
 * Redis failover to a replica that lost it does, so the gateway re-reads them and finds
 * it cannot. `heal` makes them readable again; the gateway's next retry succeeds.
 */
import { EngineUnavailableError, type Engine } from '@tradesync/server';

type ResetListener = Parameters<Engine['onReset']>[0];

export class UnreadableStreamsEngine implements Engine {
  readonly #broken = new Set<string>();
  readonly #resetListeners = new Set<ResetListener>();

  constructor(private readonly inner: Engine) {}

  get kind(): string {
    return this.inner.kind;
  }

  /** Makes `streams` unreadable and reports their history replaced, so the gateway re-reads them. */
  async breakStreams(...streams: string[]): Promise<void> {
    for (const stream of streams) this.#broken.add(stream);
    for (const stream of streams) {
      const head = await this.inner.head(stream);
      for (const listener of this.#resetListeners) listener(stream, head);
    }
  }

  /** Every stream readable again. */
  heal(): void {
    this.#broken.clear();
  }

  #check(stream: string): void {
    if (this.#broken.has(stream)) throw new EngineUnavailableError(`the part of the log holding ${stream} cannot be reached`);
  }

  open: Engine['open'] = () => this.inner.open();
  close: Engine['close'] = () => this.inner.close();
  append: Engine['append'] = (events) => this.inner.append(events);
  streams: Engine['streams'] = () => this.inner.streams();
  saveSnapshot: Engine['saveSnapshot'] = (snapshot) => this.inner.saveSnapshot(snapshot);
  trim: Engine['trim'] = (stream, upTo) => this.inner.trim(stream, upTo);
  offsetBefore: Engine['offsetBefore'] = (stream, time) => this.inner.offsetBefore(stream, time);
  onAppend: Engine['onAppend'] = (listener) => this.inner.onAppend(listener);
  health: Engine['health'] = () => this.inner.health();

  read: Engine['read'] = async (stream, after, limit) => {
    this.#check(stream);
    return this.inner.read(stream, after, limit);
  };

  head: Engine['head'] = async (stream) => {
    this.#check(stream);
    return this.inner.head(stream);
  };

  loadSnapshot: Engine['loadSnapshot'] = async (stream) => {
    this.#check(stream);
    return this.inner.loadSnapshot(stream);
  };

  onReset: Engine['onReset'] = (listener) => {
    this.#resetListeners.add(listener);
    const off = this.inner.onReset(listener);
    return () => {
      this.#resetListeners.delete(listener);
      off();
    };
  };
}
