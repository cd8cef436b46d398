import {
  CloseCode,
  closeCodePolicy,
  parseServerMessage,
  parseStream,
  type StateSyncData,
  type StreamPosition,
  type StreamState,
} from '@tradesync/protocol';
import { backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { ClientClosedError, ConnectionLostError, RequestTimeoutError, ServerError, TradeSyncError } from './errors.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import type { LiveEvent, SubscribedReply } from './replica.js';
import { RequestManager } from './requests.js';
import { SocketConnection } from './socket.js';
import type { ClientStatus, ConnectionState } from './status.js';
import { Subscription, type OptimisticPatch, type StateChangeReason, type StreamListener, type SyncedInfo, type SyncFailedInfo } from './subscription.js';

export interface CommandOptions {
  /** The account the command acts on (default: the server's choice for this token). */
  readonly account?: string;
  /** Applied to the stream's visible state at once; confirmed or rolled back later. */
  readonly optimistic?: { readonly stream: string; readonly apply: (state: StreamState) => StreamState };
  /** Reused when retrying, so the server executes the command at most once. */
  readonly commandId?: string;
}

export interface CommandResult {
  readonly success: boolean;
  readonly commandId: string;
  readonly action: string;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

/** The lifecycle of one optimistic command, for toasts and row states. */
export interface CommandUpdate {
  readonly commandId: string;
  readonly action: string;
  readonly phase: 'pending' | 'confirmed' | 'rolled_back';
  readonly error?: { readonly code: string; readonly message: string };
}

export interface ClientEvents extends Record<string, unknown[]> {
  status: [status: ClientStatus, previous: ClientStatus];
  synced: [info: SyncedInfo];
  sync_failed: [info: SyncFailedInfo];
  /** Every valid message received (debug panels). */
  message: [message: Record<string, unknown>];
  /** A message that failed validation; it was skipped. */
  invalid_message: [raw: string, reason: string];
  command: [update: CommandUpdate];
}

export interface StreamHandle<S extends StreamState = StreamState> {
  readonly stream: string;
  /** The replica's state with pending optimistic patches. */
  readonly state: S;
  readonly position: StreamPosition | undefined;
  /** true once the first sync of this stream completed. */
  readonly synced: boolean;
  /** Leaves the stream; the last listener leaving unsubscribes on the server. */
  unsubscribe(): void;
}

/** Time after a confirmed command within which its events are expected. */
const CONFIRM_GRACE_MS = 2000;

/**
 * The TradeSync client: one socket, a replica per stream, and the logic that keeps
 * every replica exactly equal to the server's state across reconnects.
 *
 * Split as tRPC's ws link is: `SocketConnection` owns the socket and keep-alive,
 * `RequestManager` the requests in flight, `StreamReplica` the per-stream ordering
 * rules; this class orchestrates them.
 */
export class TradeSyncClient {
  readonly options: ResolvedOptions;
  readonly #emitter: Emitter<ClientEvents>;
  readonly #requests: RequestManager;
  readonly #subs = new Map<string, Subscription>();
  #socket: SocketConnection | undefined;
  #status: ClientStatus;
  #urlIndex = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #degradedTimer: ReturnType<typeof setTimeout> | undefined;
  /** Callbacks waiting for the client to be connected (requests sent while offline). */
  #whenReady: Array<() => void> = [];
  #commandSeq = 0;

  constructor(options: ClientOptions) {
    this.options = resolveOptions(options);
    this.#emitter = new Emitter((error, event) => this.options.logger.error(`a ${event} listener threw`, { error: String(error) }));
    this.#requests = new RequestManager(`c${Math.random().toString(36).slice(2, 7)}-`);
    this.#status = {
      state: 'disconnected',
      attempt: 0,
      maxAttempts: this.options.maxAttempts,
      nextRetryAt: null,
      url: this.options.urls[0]!,
      connectionId: null,
      lastMessageAt: null,
      lastSequenceNumber: null,
      degraded: false,
      lastClose: null,
    };
    if (this.options.autoConnect) this.connect();
  }

  get status(): ClientStatus {
    return this.#status;
  }

  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): () => void {
    return this.#emitter.on(event, listener);
  }

  /* ------------------------------------------------------------------ connection */

  /** Starts connecting (no-op when already connected or trying). */
  connect(): void {
    if (this.#status.state !== 'disconnected' && this.#status.state !== 'failed') return;
    this.#setState({ state: 'connecting', attempt: 0, nextRetryAt: null });
    this.#open();
  }

  /** Skips the backoff wait (and, after giving up, starts over with fresh attempts). */
  reconnectNow(): void {
    const { state } = this.#status;
    if (state === 'failed' || state === 'disconnected') {
      this.connect();
      return;
    }
    if (state === 'reconnecting' && this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#setState({ nextRetryAt: null });
      this.#open();
    }
  }

  /** Stops for good: closes the socket, cancels retries, fails requests in flight. */
  disconnect(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopDegraded();
    const socket = this.#socket;
    this.#socket = undefined;
    this.#setState({ state: 'disconnected', attempt: 0, nextRetryAt: null, connectionId: null, degraded: false });
    socket?.close(CloseCode.NORMAL, 'client disconnect');
    this.#requests.failAll((type) => new ClientClosedError(type));
    for (const ready of this.#whenReady.splice(0)) ready();
    for (const sub of this.#subs.values()) sub.replica.suspend();
  }

  #open(): void {
    const url = this.options.urls[this.#urlIndex % this.options.urls.length]!;
    this.#setState({ url });
    let socket: SocketConnection;
    try {
      socket = new SocketConnection(
        url,
        this.options.WebSocket,
        {
          onOpen: () => {},
          onMessage: (text) => {
            if (this.#socket === socket) this.#onMessage(text);
          },
          onClose: (code, reason) => {
            if (this.#socket === socket) this.#onClose(code, reason);
          },
        },
        this.options.logger,
        this.options.connectTimeoutMs,
      );
    } catch (error) {
      // The constructor threw (e.g. an invalid URL): a failed attempt like any other.
      this.options.logger.error('could not open a socket', { url, error: String(error) });
      this.#onClose(1006, String(error));
      return;
    }
    this.#socket = socket;
  }

  #onClose(code: number, reason: string): void {
    this.#socket = undefined;
    // Requests in flight die with the socket; idempotent ones are retried by their callers.
    this.#requests.failAll();
    for (const sub of this.#subs.values()) sub.replica.suspend();
    const wasConnected = this.#status.state === 'connected';
    this.#setState({ connectionId: null, lastClose: { code, reason } });
    // The server says our positions are worthless: the next sync of every stream takes a snapshot.
    if (code === CloseCode.STATE_INVALIDATED) for (const sub of this.#subs.values()) sub.snapshotNext = true;
    if (closeCodePolicy(code) === 'stop') {
      this.options.logger.warn('the server refused this client; not reconnecting', { code, reason });
      this.#fail();
      return;
    }
    // After a good connection the count starts again from 1.
    const attempt = wasConnected ? 1 : this.#status.attempt + 1;
    if (attempt > this.options.maxAttempts) {
      this.#fail();
      return;
    }
    // Try the next URL: the node we were on may be gone.
    if (this.options.urls.length > 1) this.#urlIndex++;
    const delay = backoffDelay(attempt, this.options.backoff, this.options.random);
    this.#setState({ state: 'reconnecting', attempt, nextRetryAt: Date.now() + delay });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#setState({ nextRetryAt: null });
      this.#open();
    }, delay);
    // Degraded mode is for a socket that cannot get back, not for the usual blip: only
    // once a reconnect attempt has failed. Before that the resume replays every event;
    // an HTTP snapshot in between would skip them (listeners would see a jump).
    if (attempt >= 2) this.#startDegraded();
  }

  /** Read through a method so narrowing across awaits does not fool the compiler. */
  #isConnected(): boolean {
    return this.#status.state === 'connected';
  }

  #fail(): void {
    this.#setState({ state: 'failed', nextRetryAt: null });
    for (const ready of this.#whenReady.splice(0)) ready();
  }

  async #onConnected(message: Record<string, unknown>): Promise<void> {
    const socket = this.#socket;
    if (!socket) return;
    const heartbeat = typeof message.heartbeat_interval === 'number' ? message.heartbeat_interval : 30_000;
    socket.startHeartbeat(heartbeat);
    this.#setState({ connectionId: String(message.connection_id) });
    if (this.options.token !== undefined) {
      try {
        await this.#send('auth', { token: await this.#token() }, this.options.requestTimeoutMs);
      } catch (error) {
        this.options.logger.error('authentication failed', { error: String(error) });
        // The server closes only on a rejected token; a failed token() or a timeout would
        // leave this socket half-open. Close it: 4001 retries with a fresh token.
        if (this.#socket === socket) socket.close(CloseCode.UNAUTHORIZED, 'authentication failed');
        return;
      }
    }
    if (this.#socket !== socket) return;
    this.#stopDegraded();
    this.#setState({ state: 'connected', attempt: 0, nextRetryAt: null, degraded: false });
    for (const ready of this.#whenReady.splice(0)) ready();
    // Resume every stream from where its replica stands.
    for (const sub of this.#subs.values()) void this.#sync(sub, 'resume');
  }

  /** The configured token, fetched afresh when it is a function. */
  async #token(): Promise<string | undefined> {
    const { token } = this.options;
    return typeof token === 'function' ? await token() : token;
  }

  #setState(patch: Partial<ClientStatus> & { state?: ConnectionState }): void {
    const previous = this.#status;
    const next = { ...previous, ...patch };
    const changed = (Object.keys(patch) as Array<keyof ClientStatus>).some((k) => previous[k] !== next[k]);
    if (!changed) return;
    this.#status = next;
    this.#emitter.emit('status', next, previous);
  }

  /* ------------------------------------------------------------------ messages */

  #onMessage(text: string): void {
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
    const message = parsed.data as Record<string, unknown> & { type: string; sequence_number: number };
    // Kept current without a `status` event: emitting on every message would wake every
    // status listener a thousand times a second. Read `client.status` when needed.
    this.#status = { ...this.#status, lastMessageAt: Date.now(), lastSequenceNumber: message.sequence_number };
    this.#emitter.emit('message', message);
    const id = typeof message.id === 'string' ? message.id : undefined;
    if (id !== undefined) {
      const error =
        message.type === 'error'
          ? new ServerError(String((message.error as { code?: unknown }).code), String((message.error as { message?: unknown }).message), 'request')
          : undefined;
      if (this.#requests.settle(id, message, error)) return;
    }
    switch (message.type) {
      case 'connected':
        void this.#onConnected(message);
        return;
      case 'batch_update':
        this.#onLiveEvents(message.events as LiveEvent[]);
        return;
      case 'subscribed': {
        // Unrequested: the stream's history vanished and the server sent a fresh snapshot.
        const sub = this.#subs.get(String(message.stream));
        // A gap (e.g. live events overflowed the buffer) needs a sync, which may not be running.
        if (sub && this.#applySubscribed(sub, message as unknown as SubscribedReply)) void this.#sync(sub, 'resume');
        return;
      }
      case 'error':
        this.options.logger.warn('server error', { error: message.error });
        return;
      case 'pong':
      case 'authenticated':
      case 'unsubscribed':
      case 'state_sync_response':
      case 'initial_state':
      case 'command_result':
        return; // replies whose request is gone (timed out): nothing waits for them
      default:
        if (typeof message.stream === 'string' && typeof message.offset === 'number') this.#onLiveEvents([message as unknown as LiveEvent]);
    }
  }

  #invalid(text: string, reason: string): void {
    this.options.logger.warn('invalid message skipped', { reason, message: text.slice(0, 200) });
    this.#emitter.emit('invalid_message', text, reason);
  }

  #onLiveEvents(events: readonly LiveEvent[]): void {
    const touched = new Set<Subscription>();
    for (const event of events) {
      const sub = this.#subs.get(event.stream);
      if (!sub) continue;
      const outcome = sub.replica.applyLive(event);
      if (outcome === 'applied') {
        touched.add(sub);
        if (sub.patches.length > 0) this.#confirmPatches(sub);
        // No closure for listeners without onEvent: this runs for every event.
        for (const listener of sub.listeners) if (listener.onEvent) this.#call(() => listener.onEvent?.(event));
      } else if (outcome === 'gap') {
        this.options.logger.warn('gap in stream; resyncing', { stream: event.stream, have: sub.replica.offset, got: event.offset });
        void this.#sync(sub, 'resume');
      }
    }
    // One state notification per stream per frame, however many events it held.
    for (const sub of touched) this.#notifyState(sub, 'event');
  }

  /* ------------------------------------------------------------------ streams */

  /**
   * Listens to a stream. The first listener subscribes on the server; more listeners
   * share that one subscription; the last `unsubscribe()` ends it.
   */
  subscribe<S extends StreamState = StreamState>(stream: string, listener: StreamListener<S> = {}, params: { sessionId?: string } = {}): StreamHandle<S> {
    if (!parseStream(stream)) throw new TypeError(`invalid stream name "${stream}"`);
    let sub = this.#subs.get(stream);
    if (!sub) {
      sub = new Subscription(stream, params.sessionId, this.options.maxBufferedEvents);
      this.#subs.set(stream, sub);
      if (this.#status.state === 'connected') void this.#sync(sub, 'resume');
    }
    const entry = listener as StreamListener;
    sub.listeners.add(entry);
    const owner = sub;
    let left = false;
    return {
      stream,
      get state() {
        return owner.state as S;
      },
      get position() {
        return owner.position;
      },
      get synced() {
        return owner.synced;
      },
      unsubscribe: () => {
        if (left) return;
        left = true;
        owner.listeners.delete(entry);
        if (owner.listeners.size === 0) this.#release(owner);
      },
    };
  }

  /** The visible state of a subscribed stream, or undefined. */
  getState<S extends StreamState = StreamState>(stream: string): S | undefined {
    return this.#subs.get(stream)?.state as S | undefined;
  }

  /** Streams with at least one listener, and where each stands. */
  streams(): Array<{ stream: string; position: StreamPosition | undefined; synced: boolean; listeners: number }> {
    return [...this.#subs.values()].map((s) => ({ stream: s.stream, position: s.position, synced: s.synced, listeners: s.listeners.size }));
  }

  #release(sub: Subscription): void {
    sub.active = false;
    this.#subs.delete(sub.stream);
    for (const patch of sub.patches) clearTimeout(patch.timer);
    if (this.#status.state === 'connected') {
      this.#send('unsubscribe', { stream: sub.stream }, this.options.requestTimeoutMs).catch(() => {
        // The socket went away: the server forgets the subscription with it.
      });
    }
  }

  /**
   * Brings one stream up to date: `resume` asks for the events after the replica's
   * position (the server answers with a snapshot when it cannot), `fresh` asks for a
   * snapshot. Concurrent triggers share one sync; retries end in `sync_failed`.
   */
  #sync(sub: Subscription, mode: 'resume' | 'fresh'): Promise<void> {
    if (sub.syncing) {
      if (mode === 'fresh' || !sub.resyncQueued) sub.resyncQueued = mode;
      return sub.syncing;
    }
    sub.syncing = (async () => {
      let attempts = 0;
      const fail = (error: Error) => {
        const info: SyncFailedInfo = { stream: sub.stream, error, attempts };
        this.options.logger.error('stream sync failed', { stream: sub.stream, error: String(error) });
        for (const listener of sub.listeners) this.#call(() => listener.onSyncFailed?.(info));
        this.#emitter.emit('sync_failed', info);
      };
      for (;;) {
        if (!sub.active || this.#status.state !== 'connected') return;
        attempts++;
        sub.replica.beginSync();
        const since = mode === 'resume' && !sub.snapshotNext ? sub.position : undefined;
        try {
          const reply = await this.#send(
            'subscribe',
            { stream: sub.stream, ...(since ? { since } : {}), ...(sub.sessionId ? { params: { session_id: sub.sessionId } } : {}) },
            this.options.requestTimeoutMs,
          );
          if (!sub.active) return;
          // Only a subscribe sent without `since` answers an invalidation (close 4009).
          if (!since) sub.snapshotNext = false;
          const gap = this.#applySubscribed(sub, reply as unknown as SubscribedReply);
          if (!gap) return;
          // Bounded: a server whose replies never close the gap must not be asked forever.
          if (attempts > this.options.syncRetries) {
            fail(new Error(`${sub.stream}: replies left a gap after ${attempts} attempts`));
            return;
          }
          mode = 'resume';
        } catch (error) {
          if (error instanceof ConnectionLostError || error instanceof ClientClosedError) return; // resumed on reconnect
          if (attempts > this.options.syncRetries) {
            fail(error as Error);
            return;
          }
        }
      }
    })().finally(() => {
      sub.syncing = undefined;
      const queued = sub.resyncQueued;
      sub.resyncQueued = undefined;
      if (queued && sub.active) void this.#sync(sub, queued);
    });
    return sub.syncing;
  }

  /**
   * Applies a `subscribed` reply; true when a gap remains and the stream must sync again.
   * Listeners hear things in the order they happened to the replica: replayed events
   * then "synced" for a recovery; for a snapshot, "synced" (the state jumped to the
   * snapshot's offset) before the buffered live events that continue it.
   */
  #applySubscribed(sub: Subscription, reply: SubscribedReply): boolean {
    const result = sub.replica.applySubscribed(reply);
    sub.synced = true;
    const announce = () => {
      if (result.gap) return;
      const info: SyncedInfo = {
        stream: sub.stream,
        recovered: result.recovered,
        epoch: sub.replica.epoch ?? reply.epoch,
        offset: sub.replica.offset,
        replayed: result.replayed,
        via: 'socket',
        ...(result.snapshotOffset !== undefined ? { snapshotOffset: result.snapshotOffset } : {}),
      };
      for (const listener of sub.listeners) this.#call(() => listener.onSynced?.(info));
      this.#emitter.emit('synced', info);
    };
    if (result.snapshotOffset !== undefined) announce();
    for (const event of result.applied) {
      for (const listener of sub.listeners) if (listener.onEvent) this.#call(() => listener.onEvent?.(event));
    }
    this.#notifyState(sub, result.recovered ? 'recovered' : 'snapshot');
    if (result.snapshotOffset === undefined) announce();
    return result.gap;
  }

  #notifyState(sub: Subscription, reason: StateChangeReason): void {
    sub.invalidate();
    // The state is reduced only if a listener asks for it now (onState); onChange
    // listeners read it later, once for many messages.
    let state: StreamState | undefined;
    for (const listener of sub.listeners) {
      if (listener.onState) this.#call(() => listener.onState?.((state ??= sub.state), reason));
      if (listener.onChange) this.#call(() => listener.onChange?.(reason));
    }
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.options.logger.error('a stream listener threw', { error: String(error) });
    }
  }

  /* ------------------------------------------------------------------ requests */

  /** Sends one request once the client is connected; rejects on timeout, error reply or loss. */
  async #send(type: string, data: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    if (this.#status.state !== 'connected' && type !== 'auth') await this.#ready(timeoutMs, type);
    const socket = this.#socket;
    if (!socket) throw new ConnectionLostError(type);
    const { id, reply } = this.#requests.create(type, Math.max(1, deadline - Date.now()));
    if (!socket.send({ id, type, data })) {
      this.#requests.settle(id, {}, new ConnectionLostError(type));
    }
    try {
      return await reply;
    } catch (error) {
      if (error instanceof ServerError) throw new ServerError(error.code, error.message.replace(/^request: [A-Z_]+: /, ''), type);
      throw error;
    }
  }

  /** Resolves when connected; rejects when the client is closed or after `timeoutMs`. */
  #ready(timeoutMs: number, type: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#whenReady = this.#whenReady.filter((f) => f !== done);
        reject(new RequestTimeoutError(type, timeoutMs));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        if (this.#status.state === 'connected') resolve();
        else reject(new ClientClosedError(type));
      };
      this.#whenReady.push(done);
    });
  }

  /** A request that is safe to repeat: retried after a timeout or a lost connection. */
  async request(type: string, data: Record<string, unknown> = {}, retries = this.options.requestRetries): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#send(type, data, this.options.requestTimeoutMs);
      } catch (error) {
        const retryable = error instanceof RequestTimeoutError || error instanceof ConnectionLostError;
        if (!retryable || attempt >= retries) throw error;
      }
    }
  }

  /** The seed's `state_sync_request`: positions, active signals, strategies, indicators, orders. */
  async stateSync(params: { sessionId?: string; account?: string } = {}): Promise<StateSyncData> {
    const reply = await this.request('state_sync_request', {
      ...(params.sessionId ? { session_id: params.sessionId } : {}),
      ...(params.account ? { account: params.account } : {}),
    });
    return reply.data as StateSyncData;
  }

  /** `get_initial_state` with the parts named (all when omitted). */
  async getInitialState(include?: readonly string[], account?: string): Promise<Record<string, unknown>> {
    const reply = await this.request('get_initial_state', { ...(include ? { include } : {}), ...(account ? { account } : {}) });
    return reply.data as Record<string, unknown>;
  }

  /** Fresh snapshots of every subscribed stream; resolves when all are synced again. */
  async forceSync(): Promise<void> {
    await Promise.all([...this.#subs.values()].map((sub) => this.#sync(sub, 'fresh')));
  }

  /* ------------------------------------------------------------------ commands */

  /**
   * Sends a command. With `optimistic`, the patch shows at once, stays while the
   * command runs, is confirmed by success and the events that follow, and is rolled
   * back on rejection or after `optimisticTimeoutMs` without confirmation.
   */
  async command(action: string, payload: Record<string, unknown> = {}, options: CommandOptions = {}): Promise<CommandResult> {
    const commandId = options.commandId ?? `cmd-${Date.now().toString(36)}-${++this.#commandSeq}-${Math.random().toString(36).slice(2, 6)}`;
    const sub = options.optimistic ? this.#subs.get(options.optimistic.stream) : undefined;
    if (options.optimistic && !sub) throw new TypeError(`optimistic update on ${options.optimistic.stream}, which is not subscribed`);
    let patch: OptimisticPatch | undefined;
    if (sub && options.optimistic) {
      patch = { id: commandId, apply: options.optimistic.apply, confirmed: false, timer: undefined };
      const owned = patch;
      patch.timer = setTimeout(() => this.#rollback(sub, owned, action, { code: 'TIMEOUT', message: 'no confirmation in time' }), this.options.optimisticTimeoutMs);
      sub.patches.push(patch);
      this.#notifyState(sub, 'optimistic');
      this.#emitter.emit('command', { commandId, action, phase: 'pending' });
    }
    let reply: Record<string, unknown>;
    try {
      // The command id makes a repeat harmless: the server executes it at most once.
      reply = await this.request('command', { ...payload, action, command_id: commandId, ...(options.account ? { account: options.account } : {}) });
    } catch (error) {
      if (sub && patch) this.#rollback(sub, patch, action, { code: error instanceof TradeSyncError ? error.name : 'ERROR', message: (error as Error).message });
      throw error;
    }
    const result: CommandResult = {
      success: reply.success === true,
      commandId,
      action,
      ...(reply.result ? { result: reply.result as Record<string, unknown> } : {}),
      ...(reply.error ? { error: reply.error as { code: string; message: string } } : {}),
    };
    if (sub && patch) {
      if (result.success) {
        patch.confirmed = true;
        clearTimeout(patch.timer);
        // The events the command caused follow its result; drop the patch when they land.
        const owned = patch;
        patch.timer = setTimeout(() => this.#dropPatch(sub, owned, 'confirmed'), CONFIRM_GRACE_MS);
        this.#emitter.emit('command', { commandId, action, phase: 'confirmed' });
      } else {
        this.#rollback(sub, patch, action, result.error ?? { code: 'REJECTED', message: 'command rejected' });
      }
    }
    return result;
  }

  #rollback(sub: Subscription, patch: OptimisticPatch, action: string, error: { code: string; message: string }): void {
    if (!sub.patches.includes(patch)) return;
    this.#dropPatch(sub, patch, 'rollback');
    this.#emitter.emit('command', { commandId: patch.id, action, phase: 'rolled_back', error });
  }

  /** Confirmed patches are dropped once an event lands on their stream: the server's truth takes over. */
  #confirmPatches(sub: Subscription): void {
    for (const patch of sub.patches.filter((p) => p.confirmed)) this.#dropPatch(sub, patch, null);
  }

  #dropPatch(sub: Subscription, patch: OptimisticPatch, reason: StateChangeReason | null): void {
    const index = sub.patches.indexOf(patch);
    if (index < 0) return;
    clearTimeout(patch.timer);
    sub.patches.splice(index, 1);
    if (reason) this.#notifyState(sub, reason);
    else sub.invalidate();
  }

  /* ------------------------------------------------------------------ degraded mode */

  /** While the socket cannot reconnect but HTTP answers, keep replicas fresh from snapshots. */
  #startDegraded(): void {
    if (this.#degradedTimer !== undefined || !this.options.fetch || this.#subs.size === 0) return;
    const offline = () => this.#status.state !== 'connected' && this.#status.state !== 'disconnected';
    const poll = async () => {
      if (!offline()) {
        this.#degradedTimer = undefined;
        return;
      }
      const ok = await this.#pollSnapshots().catch(() => false);
      if (offline()) this.#setState({ degraded: ok });
      if (this.#degradedTimer !== undefined) this.#degradedTimer = setTimeout(() => void poll(), this.options.degradedPollMs);
    };
    this.#degradedTimer = setTimeout(() => void poll(), 0);
  }

  #stopDegraded(): void {
    clearTimeout(this.#degradedTimer);
    this.#degradedTimer = undefined;
  }

  async #pollSnapshots(): Promise<boolean> {
    const fetchImpl = this.options.fetch;
    if (!fetchImpl) return false;
    const base = httpBase(this.#status.url);
    const byAccount = new Map<string, string[]>();
    const publicStreams: string[] = [];
    for (const stream of this.#subs.keys()) {
      const ref = parseStream(stream);
      if (!ref) continue;
      if (ref.kind === 'market') publicStreams.push(stream);
      else byAccount.set(ref.account, [...(byAccount.get(ref.account) ?? []), stream]);
    }
    const groups = [...byAccount.entries()];
    if (groups.length === 0) groups.push(['', []]);
    groups[0]![1].push(...publicStreams);
    const token = await this.#token();
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    let ok = true;
    for (const [account, streams] of groups) {
      const query = new URLSearchParams({ streams: streams.join(',') });
      if (account) query.set('account', account);
      const res = await fetchImpl(`${base}/api/state/snapshot?${query}`, { headers });
      if (!res.ok) {
        ok = false;
        continue;
      }
      const body = (await res.json()) as { snapshots?: Record<string, { epoch: string; offset: number; state: unknown }> };
      // The socket may have come back while we fetched: then the socket's sync rules.
      if (this.#isConnected()) return ok;
      const snapshots = body.snapshots ?? {};
      // Degraded means "fresh over HTTP": a stream the answer left out is not.
      if (streams.some((stream) => !Object.hasOwn(snapshots, stream))) ok = false;
      for (const [stream, snapshot] of Object.entries(snapshots)) {
        const sub = this.#subs.get(stream);
        // Only move forward: a snapshot older than the replica would take it back in time.
        if (!sub || (sub.replica.epoch === snapshot.epoch && snapshot.offset <= sub.replica.offset)) continue;
        sub.replica.applySubscribed({ epoch: snapshot.epoch, offset: snapshot.offset, recovered: false, snapshot });
        sub.replica.suspend();
        this.#notifyState(sub, 'degraded');
        // Listeners following offsets must learn of the jump, as after any snapshot.
        const info: SyncedInfo = { stream, recovered: false, epoch: snapshot.epoch, offset: snapshot.offset, replayed: 0, snapshotOffset: snapshot.offset, via: 'http' };
        for (const listener of sub.listeners) this.#call(() => listener.onSynced?.(info));
        this.#emitter.emit('synced', info);
      }
    }
    return ok;
  }
}

/** `ws://host:port/ws` → `http://host:port`. */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  return `${url.protocol}//${url.host}`;
}
