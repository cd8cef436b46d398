import { parseStream, Snapshot } from '@tradesync/protocol';
import type { ResolvedOptions } from './options.js';
import { httpBase } from './rest.js';
import type { Streams } from './streams.js';
import type { TimerHandle } from './timers.js';

export interface DegradedDeps {
  readonly options: ResolvedOptions;
  readonly streams: Pick<Streams, 'get' | 'names' | 'size' | 'notify' | 'announce'>;
  /** The URL of the socket we are trying: its host serves HTTP too. */
  url(): string;
  token(): Promise<string | undefined>;
  /** The socket is down (not connected, not disconnected on purpose). */
  offline(): boolean;
  /** Reports whether every replica was refreshed over HTTP in the last poll. */
  setDegraded(degraded: boolean): void;
}

/**
 * Degraded mode: while the socket cannot reconnect but HTTP answers, replicas are kept
 * fresh from `GET /api/state/snapshot` every `degradedPollMs`. It is for a socket that
 * cannot get back, not for the usual blip (the client starts it after a failed
 * reconnect attempt): before that the resume replays every event, and an HTTP snapshot
 * in between would skip them.
 */
export class DegradedPoller {
  readonly #deps: DegradedDeps;
  #timer: TimerHandle | undefined;
  /** Bumped by every start and stop, so a poll of an earlier run never reschedules. */
  #generation = 0;
  #running = false;

  constructor(deps: DegradedDeps) {
    this.#deps = deps;
  }

  start(): void {
    const { options, streams } = this.#deps;
    if (this.#running || !options.fetch || streams.size === 0) return;
    this.#running = true;
    const generation = ++this.#generation;
    const current = () => this.#running && this.#generation === generation;
    const poll = async () => {
      if (!current()) return;
      if (!this.#deps.offline()) {
        this.stop();
        return;
      }
      const ok = await this.#poll().catch(() => false);
      if (current() && this.#deps.offline()) this.#deps.setDegraded(ok);
      if (current()) this.#timer = options.timers.setTimeout(() => void poll(), options.degradedPollMs);
    };
    this.#timer = options.timers.setTimeout(() => void poll(), 0);
  }

  stop(): void {
    this.#running = false;
    this.#generation++;
    this.#deps.options.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One round of snapshots; true when every stream came back fresh. */
  async #poll(): Promise<boolean> {
    const { options, streams } = this.#deps;
    const fetchImpl = options.fetch;
    if (!fetchImpl) return false;
    const base = httpBase(this.#deps.url());
    // One request per account (the endpoint serves one); public streams ride along.
    const byAccount = new Map<string, string[]>();
    const publicStreams: string[] = [];
    for (const stream of streams.names()) {
      const ref = parseStream(stream);
      if (!ref) continue;
      if (ref.kind === 'market') publicStreams.push(stream);
      else byAccount.set(ref.account, [...(byAccount.get(ref.account) ?? []), stream]);
    }
    const groups = [...byAccount.entries()];
    if (groups.length === 0) groups.push(['', []]);
    groups[0]![1].push(...publicStreams);
    const token = await this.#deps.token();
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    let ok = true;
    for (const [account, names] of groups) {
      const query = new URLSearchParams({ streams: names.join(',') });
      if (account) query.set('account', account);
      const res = await fetchImpl(`${base}/api/state/snapshot?${query}`, { headers });
      if (!res.ok) {
        ok = false;
        continue;
      }
      const body: unknown = await res.json();
      // The socket may have come back while we fetched: then the socket's sync rules.
      if (!this.#deps.offline()) return ok;
      const snapshots = snapshotsOf(body);
      // Degraded means "fresh over HTTP": a stream the answer left out is not.
      if (names.some((stream) => !snapshots.has(stream))) ok = false;
      for (const [stream, snapshot] of snapshots) this.#apply(stream, snapshot);
    }
    return ok;
  }

  /**
   * Only forward: a snapshot older than the replica would take it back in time. The
   * replica keeps holding live events: the socket's resume takes over when it is back.
   */
  #apply(stream: string, snapshot: Snapshot): void {
    const { streams } = this.#deps;
    const sub = streams.get(stream);
    if (!sub || (sub.replica.epoch === snapshot.epoch && snapshot.offset <= sub.replica.offset)) return;
    sub.replica.applySubscribed({ epoch: snapshot.epoch, offset: snapshot.offset, recovered: false, snapshot });
    sub.replica.suspend();
    streams.notify(sub, 'degraded');
    // Listeners following offsets must learn of the jump, as after any snapshot.
    streams.announce(sub, { stream, recovered: false, epoch: snapshot.epoch, offset: snapshot.offset, replayed: 0, snapshotOffset: snapshot.offset, via: 'http' });
  }
}

/** The `snapshots` of a `GET /api/state/snapshot?streams=` answer; invalid entries are left out. */
function snapshotsOf(body: unknown): Map<string, Snapshot> {
  const out = new Map<string, Snapshot>();
  const raw = typeof body === 'object' && body !== null && 'snapshots' in body ? body.snapshots : undefined;
  if (typeof raw !== 'object' || raw === null) return out;
  for (const [stream, value] of Object.entries(raw)) {
    const snapshot = Snapshot.safeParse(value);
    if (snapshot.success) out.set(stream, snapshot.data);
  }
  return out;
}
