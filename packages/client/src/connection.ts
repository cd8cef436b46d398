import { CloseCode } from '@tradesync/protocol';
import { backoffDelay } from './backoff.js';
import { afterClose, type AfterClose, type TokenSource } from './close-policy.js';
import { ServerError } from './errors.js';
import { StateMachine } from './fsm.js';
import type { ResolvedOptions } from './options.js';
import { SocketConnection } from './socket.js';
import { deriveStatus, type ClientStatus, type DerivedStatus } from './status.js';

/**
 * The connection as an explicit state machine (see docs/ARCHITECTURE.md):
 *
 *   idle ──CONNECT──▶ connecting ──WELCOME──▶ authenticating ──AUTHENTICATED──▶ open
 *    ▲                  │  (no token: WELCOME goes straight to open)             │
 *    │ DISCONNECT       │ CLOSED / CONNECT_TIMEOUT     CLOSED / AUTH_* / PONG_TIMEOUT
 *    │ (from any)       ▼                                                        ▼
 *    │               backoff ◀──────────── afterClose(code): retry ──────────────┘
 *    │                  │ BACKOFF_DONE / RECONNECT_NOW ──▶ connecting
 *    │                  ▼ afterClose(code): stop, or attempts exhausted
 *    └───────────── stopped ──CONNECT / RECONNECT_NOW──▶ connecting (attempts from 0)
 *
 * Timed transitions: `connecting` sends CONNECT_TIMEOUT after `connectTimeoutMs`;
 * `backoff` sends BACKOFF_DONE after the jittered delay; while the server is talking
 * to us (`authenticating`, `open`) a ping goes out every heartbeat interval and
 * PONG_TIMEOUT is sent after two intervals without any message.
 *
 * Degraded mode (HTTP polling) is not a state here: it runs across `backoff` and
 * `connecting` alike, an overlay the client starts and stops on these transitions.
 *
 * Longer than ~300 lines on purpose: the transition table, its enter handlers and the
 * effects they share read best in one place. The pure parts live apart: the machine
 * (fsm.ts), the close-code decisions (close-policy.ts), the socket (socket.ts) and the
 * mapping to the public status (status.ts).
 */
export type Phase = 'idle' | 'connecting' | 'authenticating' | 'open' | 'backoff' | 'stopped';

export type ConnectionEvent =
  | { readonly type: 'CONNECT' }
  | { readonly type: 'RECONNECT_NOW' }
  | { readonly type: 'DISCONNECT' }
  /** The server's `connected` message. */
  | { readonly type: 'WELCOME'; readonly connectionId: string; readonly heartbeatMs: number }
  | { readonly type: 'AUTHENTICATED' }
  /** The server answered `auth` with an error: the token was refused. */
  | { readonly type: 'AUTH_REJECTED'; readonly reason: string }
  /** Our side failed to authenticate (the token function threw, no reply in time). */
  | { readonly type: 'AUTH_FAILED' }
  | { readonly type: 'CLOSED'; readonly code: number; readonly reason: string }
  | { readonly type: 'CONNECT_TIMEOUT' }
  | { readonly type: 'PONG_TIMEOUT' }
  | { readonly type: 'BACKOFF_DONE' };

/** The states in which a socket exists (the group whose cleanup closes it). */
const SOCKET_PHASES: readonly Phase[] = ['connecting', 'authenticating', 'open'];
export const hasSocket = (phase: Phase): boolean => SOCKET_PHASES.includes(phase);

interface Context {
  /** The reconnect attempt in progress or next (1-based); 0 on a first connect and once open. */
  attempt: number;
  urlIndex: number;
  url: string;
  socket: SocketConnection | undefined;
  connectionId: string | null;
  heartbeatMs: number;
  lastReceivedAt: number;
  lastClose: { readonly code: number; readonly reason: string } | null;
  retryDelayMs: number;
  retryAt: number | null;
  stopReason: string | null;
  /** The last close said 4009: every stream's next sync takes a snapshot. */
  invalidated: boolean;
  degraded: boolean;
}

export interface ConnectionDeps {
  readonly options: ResolvedOptions;
  /** Every text frame of the current socket. */
  onFrame(text: string): void;
  /** Sends `auth`; resolves on `authenticated`, rejects (a `ServerError` when the token is refused). */
  authenticate(token: string): Promise<void>;
  /** Effects of a change of phase on the rest of the client; runs before `onStatus`. */
  onPhase(from: Phase, to: Phase): void;
  onStatus(status: ClientStatus, previous: ClientStatus): void;
}

export class Connection {
  readonly #machine: StateMachine<Phase, ConnectionEvent, Context>;
  readonly #deps: ConnectionDeps;
  #status: ClientStatus;

  constructor(deps: ConnectionDeps) {
    this.#deps = deps;
    const { options } = deps;
    const { timers } = options;
    const url = options.urls[0]!;
    const context: Context = {
      attempt: 0,
      urlIndex: 0,
      url,
      socket: undefined,
      connectionId: null,
      heartbeatMs: 30_000,
      lastReceivedAt: timers.now(),
      lastClose: null,
      retryDelayMs: 0,
      retryAt: null,
      stopReason: null,
      invalidated: false,
      degraded: false,
    };
    const m = (this.#machine = new StateMachine<Phase, ConnectionEvent, Context>('idle', context, timers));
    this.#status = { ...this.#derive(), lastMessageAt: null, lastSequenceNumber: null };

    const start = (_: unknown, ctx: Context): Phase => {
      ctx.attempt = 0;
      return 'connecting';
    };
    m.addTransitions(['idle', 'stopped'], { CONNECT: start, RECONNECT_NOW: start });
    m.addTransitions(['connecting', 'authenticating', 'open', 'backoff', 'stopped'], { DISCONNECT: 'idle' });
    m.addTransitions('backoff', { BACKOFF_DONE: 'connecting', RECONNECT_NOW: 'connecting' });
    m.addTransitions('connecting', {
      WELCOME: (event, ctx) => {
        ctx.connectionId = event.connectionId;
        ctx.heartbeatMs = event.heartbeatMs;
        return options.token === undefined ? 'open' : 'authenticating';
      },
      // Like a silent peer: a transient close, so the client resumes.
      CONNECT_TIMEOUT: () => this.#lost(CloseCode.HEARTBEAT_TIMEOUT, 'connect timeout', { next: 'retry', snapshot: false }),
    });
    m.addTransitions('authenticating', {
      AUTHENTICATED: 'open',
      // A refused token is what a 4001 close says: the close-code policy decides.
      AUTH_REJECTED: (event) => this.#closeWith(CloseCode.UNAUTHORIZED, event.reason),
      // The server closes only on a refused token; a failed token() or a timeout would
      // leave this socket half-open. Close it and retry: the next try asks token() again.
      AUTH_FAILED: () => this.#lost(CloseCode.UNAUTHORIZED, 'authentication failed', { next: 'retry', snapshot: false }),
    });
    m.addTransitions(['authenticating', 'open'], {
      PONG_TIMEOUT: () => this.#closeWith(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout'),
    });
    m.addTransitions(SOCKET_PHASES, {
      CLOSED: (event) => this.#lost(event.code, event.reason, afterClose(event.code, event.reason, this.#tokenSource()), false),
    });

    m.onEnter(SOCKET_PHASES, (ctx) => this.#openSocket(ctx));
    m.addTimedTransition('connecting', () => options.connectTimeoutMs, { type: 'CONNECT_TIMEOUT' });
    m.addTimedTransition('backoff', (ctx) => ctx.retryDelayMs, { type: 'BACKOFF_DONE' });
    m.onEnter(['authenticating', 'open'], (ctx) => this.#heartbeat(ctx));
    m.onEnter('authenticating', () => this.#authenticate());
    m.onEnter('open', (ctx) => {
      ctx.attempt = 0;
      ctx.degraded = false;
    });
    m.onEnter('idle', (ctx) => {
      ctx.attempt = 0;
      ctx.degraded = false;
    });
    m.onEnter('connecting', (ctx) => {
      ctx.stopReason = null;
    });

    m.onTransition((from, to) => {
      this.#deps.onPhase(from, to);
      this.#publish();
    });
  }

  get phase(): Phase {
    return this.#machine.state;
  }

  get status(): ClientStatus {
    return this.#status;
  }

  get attempt(): number {
    return this.#machine.context.attempt;
  }

  /** The last close was a 4009: streams must take snapshots. */
  get invalidated(): boolean {
    return this.#machine.context.invalidated;
  }

  get url(): string {
    return this.#machine.context.url;
  }

  isOpen(): boolean {
    return this.#machine.state === 'open';
  }

  connect(): void {
    this.#machine.send({ type: 'CONNECT' });
  }

  reconnectNow(): void {
    this.#machine.send({ type: 'RECONNECT_NOW' });
  }

  disconnect(): void {
    this.#machine.send({ type: 'DISCONNECT' });
  }

  /** The server said `connected`. */
  welcome(connectionId: string, heartbeatMs: number): void {
    this.#machine.send({ type: 'WELCOME', connectionId, heartbeatMs });
  }

  /** Sends on the current socket; false when there is none (or it is not open). */
  write(message: unknown): boolean {
    return this.#machine.context.socket?.send(message) ?? false;
  }

  /**
   * Kept current without a `status` event: emitting on every message would wake every
   * status listener a thousand times a second. Read `client.status` when needed.
   */
  noteMessage(sequenceNumber: number): void {
    this.#status = { ...this.#status, lastMessageAt: this.#deps.options.timers.now(), lastSequenceNumber: sequenceNumber };
  }

  /** Degraded mode's verdict: the replicas are (not) fresh over HTTP while the socket is down. */
  setDegraded(degraded: boolean): void {
    if (this.isOpen() || this.#machine.state === 'idle') return;
    this.#machine.context.degraded = degraded;
    this.#publish();
  }

  /** The configured token, fetched afresh when it is a function. */
  async token(): Promise<string | undefined> {
    const { token } = this.#deps.options;
    return typeof token === 'function' ? await token() : token;
  }

  #tokenSource(): TokenSource {
    const { token } = this.#deps.options;
    return token === undefined ? 'none' : typeof token === 'function' ? 'function' : 'static';
  }

  /** Our side ends the socket with `code`, and the close-code policy decides what follows. */
  #closeWith(code: number, reason: string): Phase {
    this.#deps.options.logger.warn('closing the connection', { code, reason });
    return this.#lost(code, reason, afterClose(code, reason, this.#tokenSource()));
  }

  /**
   * The socket is gone (or we end it): record why, then retry with backoff or stop.
   * The socket is detached before it is closed, so its own close report is ignored.
   */
  #lost(code: number, reason: string, decision: AfterClose, closeSocket = true): Phase {
    const ctx = this.#machine.context;
    const { options } = this.#deps;
    const socket = ctx.socket;
    ctx.socket = undefined;
    if (closeSocket) socket?.close(code, reason);
    ctx.lastClose = { code, reason };
    ctx.invalidated = decision.next === 'retry' && decision.snapshot;
    if (decision.next === 'stop') {
      options.logger.warn('not reconnecting', { code, reason: decision.reason });
      ctx.stopReason = decision.reason;
      return 'stopped';
    }
    const attempt = ctx.attempt + 1;
    if (attempt > options.maxAttempts) {
      ctx.stopReason = `gave up after ${options.maxAttempts} attempts`;
      return 'stopped';
    }
    ctx.attempt = attempt;
    // Try the next URL: the node we were on may be gone.
    if (options.urls.length > 1) ctx.urlIndex++;
    ctx.retryDelayMs = backoffDelay(attempt, options.backoff, options.random);
    ctx.retryAt = options.timers.now() + ctx.retryDelayMs;
    return 'backoff';
  }

  #openSocket(ctx: Context): (() => void) | undefined {
    const { options } = this.#deps;
    ctx.url = options.urls[ctx.urlIndex % options.urls.length]!;
    ctx.connectionId = null;
    let socket: SocketConnection;
    try {
      socket = new SocketConnection(
        ctx.url,
        options.WebSocket,
        {
          onMessage: (text) => {
            if (ctx.socket !== socket) return;
            ctx.lastReceivedAt = options.timers.now();
            this.#deps.onFrame(text);
          },
          onClose: (code, reason) => {
            if (ctx.socket === socket) this.#machine.send({ type: 'CLOSED', code, reason });
          },
        },
        options.logger,
      );
    } catch (error) {
      // The constructor threw (e.g. an invalid URL): a failed attempt like any other.
      options.logger.error('could not open a socket', { url: ctx.url, error: String(error) });
      this.#machine.send({ type: 'CLOSED', code: 1006, reason: String(error) });
      return undefined;
    }
    ctx.socket = socket;
    return () => {
      const open = ctx.socket;
      ctx.socket = undefined;
      ctx.connectionId = null;
      open?.close(CloseCode.NORMAL, 'client disconnect');
    };
  }

  /**
   * Browsers hide protocol pings, so the client sends an application `ping` every
   * interval. The silence check is a timer aimed at `lastReceivedAt + 2 × interval`
   * (re-aimed when it fires early), so a dead peer is noticed within two intervals,
   * not three, and no timer is armed per message.
   */
  #heartbeat(ctx: Context): () => void {
    const { timers, logger } = this.#deps.options;
    const interval = ctx.heartbeatMs;
    const ping = timers.setInterval(() => ctx.socket?.send({ type: 'ping' }), interval);
    let deadline: ReturnType<typeof timers.setTimeout> | undefined;
    const watch = () => {
      const silentFor = timers.now() - ctx.lastReceivedAt;
      if (silentFor >= 2 * interval) {
        logger.warn('no message for two heartbeat intervals: connection is dead', { url: ctx.url, silentFor });
        this.#machine.send({ type: 'PONG_TIMEOUT' });
        return;
      }
      deadline = timers.setTimeout(watch, 2 * interval - silentFor);
    };
    watch();
    return () => {
      timers.clearInterval(ping);
      timers.clearTimeout(deadline);
    };
  }

  /** Asks for the token and sends `auth`; the outcome is an event, ignored once the state was left. */
  #authenticate(): () => void {
    let current = true;
    void (async () => {
      try {
        await this.#deps.authenticate((await this.token()) ?? '');
        if (current) this.#machine.send({ type: 'AUTHENTICATED' });
      } catch (error) {
        if (!current) return;
        this.#deps.options.logger.error('authentication failed', { error: String(error) });
        this.#machine.send(error instanceof ServerError ? { type: 'AUTH_REJECTED', reason: error.message } : { type: 'AUTH_FAILED' });
      }
    })();
    return () => {
      current = false;
    };
  }

  #publish(): void {
    const previous = this.#status;
    const derived = this.#derive();
    const changed = (Object.keys(derived) as Array<keyof typeof derived>).some((k) => derived[k] !== previous[k]);
    if (!changed) return;
    this.#status = { ...derived, lastMessageAt: previous.lastMessageAt, lastSequenceNumber: previous.lastSequenceNumber };
    this.#deps.onStatus(this.#status, previous);
  }

  #derive(): DerivedStatus {
    return deriveStatus(this.#machine.state, this.#machine.context, this.#deps.options.maxAttempts);
  }

}
