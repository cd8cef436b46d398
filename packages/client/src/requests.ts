import { ConnectionLostError, RequestTimeoutError, type TradeSyncError } from './errors.js';

interface Pending {
  readonly type: string;
  readonly resolve: (reply: Record<string, unknown>) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Requests in flight, matched to their replies by `id`, each with its own timeout. */
export class RequestManager {
  readonly #pending = new Map<string, Pending>();
  #next = 0;

  constructor(private readonly prefix: string) {}

  get size(): number {
    return this.#pending.size;
  }

  /** Registers a request; the caller sends `{id, type, data}`. */
  create(type: string, timeoutMs: number): { id: string; reply: Promise<Record<string, unknown>> } {
    const id = `${this.prefix}${++this.#next}`;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RequestTimeoutError(type, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { type, resolve, reject, timer });
    });
    return { id, reply };
  }

  /** Settles the request a reply belongs to; false when none is waiting for it. */
  settle(id: string, reply: Record<string, unknown>, error?: Error): boolean {
    const pending = this.#pending.get(id);
    if (!pending) return false;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(reply);
    return true;
  }

  /** Fails every request in flight (the socket closed under them). */
  failAll(makeError: (type: string) => TradeSyncError = (type) => new ConnectionLostError(type)): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(makeError(pending.type));
    }
  }
}
