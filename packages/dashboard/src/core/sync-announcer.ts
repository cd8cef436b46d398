import type { ClientStatus, SyncFailedInfo } from '@tradesync/client';
import type { StoreApi } from 'zustand/vanilla';
import type { ToastSpec } from './notifications.js';
import type { ConnectionState } from './stores.js';

/**
 * The connection store and what the page says about syncing. After a reconnect (or
 * a Force Sync) every stream resyncs; when the last one is back and none failed, the
 * page says "State synchronized" once. A stream that cannot sync puts a banner up
 * naming it (with Force Sync, which then retries only the failed streams, and refresh),
 * which comes down stream by stream as they sync.
 *
 * A round of syncs is the set of streams still expected; it is started only by a
 * *re*connect (a connection that was up, went down and came back), never by the
 * page's first connection, which has nothing to announce.
 */
interface SyncAnnouncerOptions {
  readonly connection: StoreApi<ConnectionState>;
  /** The streams a round waits for (every stream held when it starts). */
  readonly streams: () => Iterable<string>;
  /** The client's status now. */
  readonly status: () => ClientStatus;
  /** A toast shown whatever the toast settings ("State synchronized"). */
  readonly announce: (toast: ToastSpec) => void;
  /** Fresh snapshots of the streams named, or of every stream (the client's `forceSync`). */
  readonly forceSync: (streams?: readonly string[]) => Promise<void>;
  readonly now: () => number;
}

export const SYNCHRONIZED: ToastSpec = { kind: 'success', title: 'State synchronized', description: 'Every panel shows the server’s current state.' };

export class SyncAnnouncer {
  readonly #options: SyncAnnouncerOptions;
  /** Streams of the round in progress still to sync; undefined when no round runs. */
  #round: Set<string> | undefined;
  #wasConnected: boolean;
  #lostConnection = false;

  constructor(options: SyncAnnouncerOptions) {
    this.#options = options;
    this.#wasConnected = options.status().state === 'connected';
  }

  get #store(): StoreApi<ConnectionState> {
    return this.#options.connection;
  }

  onStatus(status: ClientStatus, previous: ClientStatus): void {
    if (status.state === previous.state) return;
    if (previous.state === 'connected') this.#lostConnection = true;
    if (status.state === 'connected') {
      if (this.#wasConnected && this.#lostConnection) this.#startRound();
      this.#wasConnected = true;
      this.#lostConnection = false;
    }
  }

  onSynced(stream: string): void {
    const failure = this.#store.getState().syncFailure;
    if (failure?.streams.includes(stream)) {
      const streams = failure.streams.filter((s) => s !== stream);
      this.#store.setState({ syncFailure: streams.length > 0 ? { ...failure, streams } : null });
    }
    if (!this.#settle(stream)) return;
    if (this.#store.getState().syncFailure === null) {
      this.#store.setState({ lastSyncedAt: this.#options.now(), forceSyncing: false });
      this.#options.announce(SYNCHRONIZED);
    }
  }

  onSyncFailed(info: SyncFailedInfo): void {
    const failure = this.#store.getState().syncFailure;
    const streams = [...new Set([...(failure?.streams ?? []), info.stream])];
    this.#store.setState({
      syncFailure: { streams, message: `Could not synchronize ${streams.join(', ')}: ${info.error.message}` },
      forceSyncing: false,
    });
    // The round ends without an announcement: the banner says what happened.
    this.#settle(info.stream);
  }

  /**
   * Fresh snapshots; "State synchronized" when all are back. While the banner names
   * streams that failed, only those are asked again (the others are current); else every stream.
   */
  forceSync(): void {
    const failed = this.#store.getState().syncFailure?.streams;
    const streams = failed && failed.length > 0 ? [...failed] : undefined;
    this.#startRound(streams);
    this.#store.setState({ forceSyncing: true });
    const done = () => this.#store.setState({ forceSyncing: false });
    this.#options.forceSync(streams).then(done, done);
  }

  /** The banner's streams belong to an account the page left. */
  clearFailure(): void {
    this.#store.setState({ syncFailure: null });
  }

  /** Once a second: the clock panels read ages (and the status pill its countdown) from. */
  tick(): void {
    this.#store.setState({ now: this.#options.now() });
  }

  /** A round waits for `streams` (every stream held when omitted). */
  #startRound(streams?: Iterable<string>): void {
    this.#round = new Set(streams ?? this.#options.streams());
  }

  /** Takes `stream` off the round; true when that ended the round. */
  #settle(stream: string): boolean {
    const round = this.#round;
    if (!round) return false;
    round.delete(stream);
    if (round.size > 0) return false;
    this.#round = undefined;
    return true;
  }
}
