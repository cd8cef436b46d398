import {
  isEventMessage,
  parseServerMessage,
  type ClientMessageData,
  type ClientMessageType,
  type ReplyTo,
  type StateSyncData,
  type StreamPosition,
  type StreamState,
} from '@tradesync/protocol';
import { Commands, type CommandOptions, type CommandResult, type CommandUpdate } from './commands.js';
import { Connection, hasSocket, type Phase } from './connection.js';
import { DegradedPoller } from './degraded.js';
import { Emitter } from './emitter.js';
import { ClientClosedError, ConnectionLostError } from './errors.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { Requests } from './requests.js';
import { httpBase, readEvents, type EventsPage, type ReadEventsOptions } from './rest.js';
import { assertNever, type ClientStatus } from './status.js';
import type { StreamFreshness } from './freshness.js';
import { Streams, type DivergedInfo, type FreshnessCounts, type LostInfo, type StreamHandle } from './streams.js';
import type { StreamListener, SyncedInfo, SyncFailedInfo } from './subscription.js';

export type { CommandOptions, CommandResult, CommandUpdate } from './commands.js';
export type { DivergedInfo, FreshnessCounts, LostInfo, StreamHandle } from './streams.js';
export type { StreamFreshness } from './freshness.js';

export interface ClientEvents extends Record<string, unknown[]> {
  status: [status: ClientStatus, previous: ClientStatus];
  synced: [info: SyncedInfo];
  sync_failed: [info: SyncFailedInfo];
  /** Every valid message received (debug panels): a `ServerMessage`, typed loosely so test doubles can emit partial ones. */
  message: [message: Record<string, unknown>];
  /** A message that failed validation; it was skipped. */
  invalid_message: [raw: string, reason: string];
  command: [update: CommandUpdate];
  /** A checksum proved a replica wrong (the server's differs at the same offset); a snapshot replaces it. */
  diverged: [info: DivergedInfo];
  /** A `stream_position` was past the replica: live events were lost on the way; the stream resumes from its offset. */
  lost: [info: LostInfo];
  /** A stream turned stale (no `stream_position` for two of its intervals while connected), or fresh again. */
  freshness: [info: StreamFreshness];
}

/**
 * The TradeSync client: one socket, a replica per stream, and the logic that keeps
 * every replica exactly equal to the server's state across reconnects.
 *
 * A façade over one-concept parts, as tRPC's ws link is split: `Connection` (the
 * socket's state machine, heartbeats, backoff, close-code policy), `Requests` (in
 * flight, typed by the protocol), `Streams` (subscriptions and their sync state
 * machines), `Commands` (optimistic), `DegradedPoller` (HTTP while the socket is
 * down). This class wires them and routes each incoming message to one of them.
 */
/** What `stateSync()` answers: seed 000's `{success, data}`, with `error` when a part failed. */
export interface StateSyncResult {
  readonly success: boolean;
  readonly error?: { readonly code: string; readonly message: string };
  readonly data: StateSyncData;
}

export interface SubscribeParams {
  /** The seed's session filter, passed to the server as `params.session_id`. */
  readonly sessionId?: string;
  /**
   * Conflate (market and indicators streams only): at most this many frames a second,
   * each with the newest event per symbol (and indicator). Offsets then jump; the state
   * is still exact after every frame. Listeners of one stream share one subscription,
   * conflated only when all of them asked for it, at the highest rate asked.
   */
  readonly maxRate?: number;
}

export class TradeSyncClient {
  readonly options: ResolvedOptions;
  readonly #emitter: Emitter<ClientEvents>;
  readonly #connection: Connection;
  readonly #requests: Requests;
  readonly #streams: Streams;
  readonly #commands: Commands;
  readonly #degraded: DegradedPoller;

  constructor(options: ClientOptions) {
    const resolved = (this.options = resolveOptions(options));
    this.#emitter = new Emitter((error, event) => resolved.logger.error(`a ${event} listener threw`, { error: String(error) }));
    this.#connection = new Connection({
      options: resolved,
      onFrame: (text) => this.#onFrame(text),
      authenticate: async (token) => {
        await this.#requests.send('auth', { token }, resolved.requestTimeoutMs);
      },
      onPhase: (from, to) => this.#onPhase(from, to),
      onStatus: (status, previous) => this.#emitter.emit('status', status, previous),
    });
    this.#requests = new Requests(`c${Math.random().toString(36).slice(2, 7)}-`, this.#connection, resolved.timers, {
      timeoutMs: resolved.requestTimeoutMs,
      retries: resolved.requestRetries,
    });
    this.#streams = new Streams({
      options: resolved,
      requests: this.#requests,
      isOpen: () => this.#connection.isOpen(),
      emitSynced: (info) => this.#emitter.emit('synced', info),
      emitSyncFailed: (info) => this.#emitter.emit('sync_failed', info),
      emitDiverged: (info) => this.#emitter.emit('diverged', info),
      emitLost: (info) => this.#emitter.emit('lost', info),
      emitFreshness: (info) => this.#emitter.emit('freshness', info),
    });
    this.#commands = new Commands({ options: resolved, requests: this.#requests, streams: this.#streams, emit: (update) => this.#emitter.emit('command', update) });
    this.#degraded = new DegradedPoller({
      options: resolved,
      streams: this.#streams,
      url: () => this.#connection.url,
      token: () => this.#connection.token(),
      offline: () => this.#connection.phase !== 'open' && this.#connection.phase !== 'idle',
      setDegraded: (degraded) => this.#connection.setDegraded(degraded),
    });
    if (resolved.autoConnect) this.connect();
  }

  get status(): ClientStatus {
    return this.#connection.status;
  }

  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): () => void {
    return this.#emitter.on(event, listener);
  }

  /* ------------------------------------------------------------------ connection */

  /** Starts connecting (no-op when already connected or trying). */
  connect(): void {
    this.#connection.connect();
  }

  /** Skips the backoff wait (and, after giving up, starts over with fresh attempts). */
  reconnectNow(): void {
    this.#connection.reconnectNow();
  }

  /** Stops for good: closes the socket, cancels retries, fails requests in flight. */
  disconnect(): void {
    this.#connection.disconnect();
    // Also when already idle: requests waiting for a connection that will not come fail now.
    this.#requests.closed();
  }

  /** What a change of the connection's phase means to the other parts. */
  #onPhase(from: Phase, to: Phase): void {
    if (hasSocket(from) && !hasSocket(to)) {
      // Requests in flight die with the socket; idempotent ones are retried by their callers.
      this.#requests.failInFlight(to === 'idle' ? (type) => new ClientClosedError(type) : (type) => new ConnectionLostError(type));
      this.#streams.suspendAll(this.#connection.invalidated);
    }
    // Positions are judged only while the server can send them.
    this.#streams.watchFreshness(to === 'open');
    switch (to) {
      case 'open':
        this.#degraded.stop();
        this.#requests.opened();
        // Resume every stream from where its replica stands.
        this.#streams.resumeAll();
        return;
      case 'backoff':
        // Degraded mode is for a socket that cannot get back, not for the usual blip.
        if (this.#connection.attempt >= 2) this.#degraded.start();
        return;
      case 'idle':
        this.#degraded.stop();
        this.#requests.closed();
        this.#streams.suspendAll(false);
        return;
      case 'stopped':
        this.#requests.closed();
        return;
      case 'connecting':
      case 'authenticating':
        return;
      default:
        assertNever(to);
    }
  }

  /* ------------------------------------------------------------------ messages */

  #onFrame(text: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.#invalid(text, 'not JSON');
      return;
    }
    const parsed = parseServerMessage(raw);
    if (!parsed.success) {
      this.#invalid(text, parsed.error.issues[0]?.message ?? 'invalid message');
      return;
    }
    const message = parsed.data;
    this.#connection.noteMessage(message.sequence_number);
    this.#emitter.emit('message', message);
    if (isEventMessage(message)) {
      this.#streams.onLiveEvents([message]);
      return;
    }
    if (this.#requests.settle(message)) return;
    switch (message.type) {
      case 'connected':
        this.#streams.setPositionInterval(message.position_interval_ms ?? 0);
        this.#connection.welcome(message.connection_id, message.heartbeat_interval);
        return;
      case 'stream_position':
        this.#streams.onPosition(message);
        return;
      case 'batch_update':
        this.#streams.onLiveEvents(message.events);
        return;
      case 'subscribed':
        // Unrequested (no id): the stream's history vanished and the server sent a fresh
        // snapshot. A reply with an id whose request gave up waiting is stale: a newer
        // sync has been asked for since, and applying this one could move the replica back.
        if (message.id === undefined) this.#streams.onUnrequestedReply(message.stream, message);
        return;
      case 'error':
        this.options.logger.warn('server error', { error: message.error });
        return;
      default:
        // Replies whose request is gone (timed out), and types newer than this client.
        return;
    }
  }

  #invalid(text: string, reason: string): void {
    this.options.logger.warn('invalid message skipped', { reason, message: text.slice(0, 200) });
    this.#emitter.emit('invalid_message', text, reason);
  }

  /* ------------------------------------------------------------------ streams */

  /**
   * Listens to a stream. The first listener subscribes on the server; more listeners
   * share that one subscription; the last `unsubscribe()` ends it.
   */
  subscribe<S extends StreamState = StreamState>(stream: string, listener: StreamListener<S> = {}, params: SubscribeParams = {}): StreamHandle<S> {
    return this.#streams.subscribe(stream, listener, params);
  }

  /** What the server's positions proved of a stream's replica, and whether it is stale; undefined when not subscribed. */
  freshness(stream: string): StreamFreshness | undefined {
    return this.#streams.get(stream)?.freshness.snapshot(stream);
  }

  /** Positions verified, losses and divergences found, streams gone stale, since the client started. */
  get freshnessCounts(): Readonly<FreshnessCounts> {
    return this.#streams.counts;
  }

  /** The visible state of a subscribed stream, or undefined. */
  getState<S extends StreamState = StreamState>(stream: string): S | undefined {
    return this.#streams.get(stream)?.view as S | undefined;
  }

  /** Streams with at least one listener, where each stands, and what its positions proved. */
  streams(): Array<{ stream: string; position: StreamPosition | undefined; synced: boolean; listeners: number; maxRate: number | undefined; freshness: StreamFreshness }> {
    return this.#streams.list();
  }

  /**
   * Fresh snapshots of every subscribed stream, or only of those named (say, the ones a
   * `sync_failed` reported); resolves when they are synced again.
   */
  async forceSync(streams?: Iterable<string>): Promise<void> {
    await this.#streams.forceSync(streams);
  }

  /** A page of a stream's events over REST (`GET /api/v1/streams/<stream>/events`); 410 throws `HistoryTrimmedError`. */
  async readEvents(stream: string, options: ReadEventsOptions): Promise<EventsPage> {
    const fetchImpl = this.options.fetch;
    if (!fetchImpl) throw new TypeError('readEvents needs fetch: pass options.fetch');
    return readEvents(fetchImpl, httpBase(this.#connection.url), await this.#connection.token(), stream, options);
  }

  /* ------------------------------------------------------------------ requests */

  /** A request that is safe to repeat: retried after a timeout or a lost connection. */
  async request<T extends ClientMessageType>(type: T, data?: ClientMessageData<T>, retries = this.options.requestRetries): Promise<ReplyTo<T>> {
    return this.#requests.request(type, data, retries);
  }

  /**
   * The seed's `state_sync_request`: positions, active signals, strategies, indicators,
   * orders. `success` is false when a part could not be built (its stream's log cannot be
   * read right now): that part is null in `data`, `data.failed_streams` names its stream
   * and `error` sums it up; the other parts are current.
   */
  async stateSync(params: { sessionId?: string; account?: string } = {}): Promise<StateSyncResult> {
    const reply = await this.#requests.request('state_sync_request', {
      ...(params.sessionId ? { session_id: params.sessionId } : {}),
      ...(params.account ? { account: params.account } : {}),
    });
    return { success: reply.success, ...(reply.error ? { error: reply.error } : {}), data: reply.data };
  }

  /** `get_initial_state` with the parts named (all when omitted). */
  async getInitialState(include?: readonly string[], account?: string): Promise<Record<string, unknown>> {
    const reply = await this.#requests.request('get_initial_state', { ...(include ? { include: [...include] } : {}), ...(account ? { account } : {}) });
    return reply.data;
  }

  /* ------------------------------------------------------------------ commands */

  /**
   * Sends a command. With `optimistic`, the patch shows at once, stays while the
   * command runs, is confirmed by success and the events that follow, and is rolled
   * back on rejection or after `optimisticTimeoutMs` without confirmation.
   */
  async command(action: string, payload: Record<string, unknown> = {}, options: CommandOptions = {}): Promise<CommandResult> {
    return this.#commands.command(action, payload, options);
  }
}

export { httpBase } from './rest.js';
