import {
  CLIENT_MESSAGES,
  ClientEnvelope,
  CloseCode,
  ErrorCode,
  hasSessions,
  INITIAL_STATE_PARTS,
  isConflatable,
  isClientMessageType,
  parseStream,
  type ClientMessageData,
  type ClientMessageType,
  type InitialStatePart,
  type ServerMessageFields,
} from '@tradesync/protocol';
import type { z } from 'zod';
import { AuthError, canReadStream, resolveAccount, type Principal } from '../auth.js';
import { runCommand } from '../commands.js';
import { EngineUnavailableError } from '../engines/engine.js';
import { balancesPart, buildStateSync, ordersPart, portfolioPart, stateSyncOutcome, unavailableStream } from '../state/views.js';
import type { GatewayContext } from '../context.js';
import { MAX_NESTING, nestedDeeperThan } from '../nesting.js';
import type { Connection } from './connection.js';
import { planSubscription, prefetchMissed } from './resume.js';

/** How long a resume waits for this node to catch up with the position a client brings. */
const CATCH_UP_WAIT_MS = 2000;

/** The protocol's data schema of each client message, typed per message so `#dispatch` can pair it with its handler. */
const DATA_SCHEMAS: { readonly [T in ClientMessageType]: z.ZodType<ClientMessageData<T>> } = CLIENT_MESSAGES;

type Handler<T extends ClientMessageType> = (conn: Connection, data: ClientMessageData<T>, id: string | undefined) => Promise<void> | void;

/**
 * Turns each client frame into exactly one reply (or one error) on the same
 * connection. A bad message gets an error and the connection stays usable; only
 * abuse (oversize frames, a sustained flood) closes it.
 */
export class MessageHandlers {
  constructor(private readonly ctx: GatewayContext) {}

  /** Connections already condemned for abuse: their later frames are dropped unread. */
  readonly #condemned = new WeakSet<Connection>();

  /**
   * Takes one frame. The size and rate checks are decided at once, so abuse is cut off
   * without queuing its frames; everything else runs after the connection's previous
   * frame is done. Handlers that await (subscribe, auth, command) must not be
   * overtaken: `subscribe` then `unsubscribe` must end unsubscribed, `auth` then
   * `subscribe` must be authorized, and the subscription limit must count each
   * subscription before judging the next. Replies come in request order too.
   */
  handle(conn: Connection, raw: string, bytes: number): Promise<void> {
    if (this.#condemned.has(conn)) return Promise.resolve();
    return conn.inOrder(this.#admit(conn, raw, bytes));
  }

  /** The abuse checks: what to do with this frame, in its turn. */
  #admit(conn: Connection, raw: string, bytes: number): () => Promise<void> | void {
    const rate = conn.receive();
    const { limits } = this.ctx.config;
    if (bytes > limits.maxPayloadBytes) {
      this.#condemned.add(conn);
      return () => {
        conn.sendError(ErrorCode.PAYLOAD_TOO_LARGE, `frame of ${bytes} bytes exceeds the limit of ${limits.maxPayloadBytes}`);
        conn.close(CloseCode.MESSAGE_TOO_BIG, 'message too big');
      };
    }
    // Every dropped message is answered; a flood that goes on (see MessageRate) closes the connection.
    if (rate === 'flood') {
      this.#condemned.add(conn);
      return () => conn.close(CloseCode.POLICY_VIOLATION, 'message rate limit exceeded');
    }
    if (rate === 'dropped') {
      return () => conn.sendError(ErrorCode.RATE_LIMITED, `more than ${limits.messagesPerSecond} messages per second; message dropped`);
    }
    return () => this.#process(conn, raw);
  }

  async #process(conn: Connection, raw: string): Promise<void> {
    // The expiry timer closes the connection on time; a frame already queued behind it is not served.
    if (conn.closed || conn.expired()) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      conn.sendError(ErrorCode.INVALID_MESSAGE, 'frame is not valid JSON');
      return;
    }
    if (nestedDeeperThan(parsed)) {
      const id = typeof (parsed as { id?: unknown } | null)?.id === 'string' ? (parsed as { id: string }).id : undefined;
      conn.sendError(ErrorCode.INVALID_MESSAGE, `message nested deeper than ${MAX_NESTING} levels`, id);
      return;
    }
    const envelope = ClientEnvelope.safeParse(parsed);
    if (!envelope.success) {
      const id = typeof (parsed as { id?: unknown } | null)?.id === 'string' ? (parsed as { id: string }).id : undefined;
      conn.sendError(ErrorCode.INVALID_MESSAGE, describe(envelope.error.issues, 'message'), id);
      return;
    }
    const { id, type } = envelope.data;
    if (!isClientMessageType(type)) {
      this.ctx.metrics.messagesIn.inc({ type: 'unknown' });
      conn.sendError(ErrorCode.UNKNOWN_TYPE, `unknown message type "${type}"`, id);
      return;
    }
    this.ctx.metrics.messagesIn.inc({ type });
    if (!conn.authenticated && type !== 'auth' && type !== 'ping') {
      conn.sendError(ErrorCode.UNAUTHORIZED, 'authenticate first: send {"type":"auth","data":{"token":"…"}}', id);
      return;
    }
    try {
      await this.#dispatch(conn, type, envelope.data.data ?? {}, id);
    } catch (err) {
      if (err instanceof EngineUnavailableError) {
        conn.sendError(ErrorCode.UNAVAILABLE, 'the event log is unavailable; try again shortly', id);
      } else {
        conn.log.child({ msg_type: type, request_id: id }).error({ err }, 'handler failed');
        conn.sendError(ErrorCode.INTERNAL, 'internal error', id);
      }
    }
  }

  /**
   * Validates the data of a `type` message with that type's schema and runs its handler.
   * Both are looked up by the same generic `T`, so the parsed data has exactly the type
   * the handler takes (no cast between the schema and the handler).
   */
  async #dispatch<T extends ClientMessageType>(conn: Connection, type: T, raw: unknown, id: string | undefined): Promise<void> {
    const data = DATA_SCHEMAS[type].safeParse(raw);
    if (!data.success) return conn.sendError(ErrorCode.INVALID_MESSAGE, describe(data.error.issues, type), id);
    if (conn.log.isLevelEnabled('debug')) conn.log.debug({ msg_type: type, request_id: id }, 'message');
    const handler: Handler<T> = this.#handlers[type];
    await handler(conn, data.data, id);
  }

  readonly #handlers: { [T in ClientMessageType]: Handler<T> } = {
    subscribe: async (conn, data, id) => {
      const ref = parseStream(data.stream);
      if (!ref) return conn.sendError(ErrorCode.INVALID_STREAM, `unknown or malformed stream "${data.stream}"`, id);
      if (!canReadStream(conn.principal, ref)) return conn.sendError(ErrorCode.FORBIDDEN, `not allowed to read ${ref.name}`, id);
      const maxRate = data.params?.max_rate;
      if (maxRate !== undefined && !isConflatable(ref.kind)) {
        return conn.sendError(ErrorCode.INVALID_PARAMS, `max_rate applies to market and indicators streams only; ${ref.kind} streams are never conflated`, id);
      }
      const { maxSubscriptions } = this.ctx.config.limits;
      if (!conn.isSubscribed(ref.name) && conn.subscriptionCount >= maxSubscriptions) {
        return conn.sendError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `at most ${maxSubscriptions} subscriptions per connection`, id);
      }
      const { maxRecoveryEvents } = this.ctx.config.history;
      const entry = await this.ctx.store.entry(ref);
      // What this node holds of the stream is known to be behind its log: no snapshot or
      // resume from it (it would be served as current); the client retries later.
      const unavailable = this.ctx.store.unavailable(ref.name);
      if (unavailable !== undefined) return conn.sendError(ErrorCode.UNAVAILABLE, unavailableStream(ref.name, unavailable).message, id);
      const since = data.since;
      if (since && since.epoch === entry.epoch && since.offset > entry.head) {
        // The client saw more than this node has applied (it comes from a node ahead of
        // this one): let this node catch up rather than send it back in time.
        const stored = await this.ctx.engine.head(ref.name);
        if (stored.epoch === entry.epoch && stored.offset >= since.offset) await this.ctx.store.reach(entry, since.offset, CATCH_UP_WAIT_MS);
      }
      const prefetched = await prefetchMissed(this.ctx.store, this.ctx.engine, entry, data.since, maxRecoveryEvents);
      // The client may have hung up while we read: then there is nobody to register.
      if (!conn.writable) return;
      // From here to the send, nothing awaits: the plan, the registration and the reply
      // describe the same moment of the stream.
      const sessionId = data.params?.session_id;
      // Streams of a kind with sessions show a session-scoped subscription that session's view.
      const session = sessionId !== undefined && hasSessions(ref.kind) ? sessionId : undefined;
      const plan = planSubscription(this.ctx.store, entry, data.since, prefetched, maxRecoveryEvents, { conflated: maxRate !== undefined, session });
      this.ctx.fanout.subscribe(conn, ref.name, sessionId, plan, maxRate);
      if (data.since) this.ctx.metrics.resumes.inc({ result: plan.recovered ? 'recovered' : 'snapshot' });
      const checksum = this.ctx.positions.checksumOf(entry, session);
      conn.send(
        'subscribed',
        { stream: ref.name, ...plan, checksum, ...(maxRate !== undefined ? { max_rate: maxRate } : {}), ...(session !== undefined ? { session_id: session } : {}) },
        id,
      );
    },

    unsubscribe: (conn, data, id) => {
      const ref = parseStream(data.stream);
      if (!ref) return conn.sendError(ErrorCode.INVALID_STREAM, `unknown or malformed stream "${data.stream}"`, id);
      this.ctx.fanout.unsubscribe(conn, ref.name);
      conn.send('unsubscribed', { stream: ref.name }, id);
    },

    state_sync_request: (conn, data, id) => {
      const account = this.#account(conn, data.account, id);
      if (account === undefined) return;
      const sync = buildStateSync(this.ctx.store, account, data.session_id);
      conn.send('state_sync_response', { ...stateSyncOutcome(sync), data: sync }, id);
    },

    get_initial_state: (conn, data, id) => {
      const include = data.include && data.include.length > 0 ? data.include : INITIAL_STATE_PARTS;
      const unknown = include.filter((part) => !(INITIAL_STATE_PARTS as readonly string[]).includes(part));
      if (unknown.length > 0) {
        return conn.sendError(
          ErrorCode.INVALID_INCLUDE,
          `unknown include value${unknown.length > 1 ? 's' : ''}: ${unknown.map((u) => `'${u}'`).join(', ')}; valid: ${INITIAL_STATE_PARTS.join(', ')}`,
          id,
        );
      }
      const account = this.#account(conn, data.account, id);
      if (account === undefined) return;
      const { store } = this.ctx;
      const parts: { [P in InitialStatePart]: () => unknown } = {
        portfolio: () => portfolioPart(store, account),
        balances: () => balancesPart(store, account),
        orders: () => ordersPart(store, account),
        subscriptions: () => {
          const streams = conn.positions();
          // `rooms`: the stream names alone, as seed 004's clients read them.
          return { streams, rooms: streams.map((s) => s.stream) };
        },
        connection: () => {
          const stats = conn.stats;
          return {
            connection_id: conn.id,
            connected_at: conn.connectedAt.toISOString(),
            message_count: stats.messagesIn,
            portfolio_updates_received: conn.eventsReceived('portfolio'),
            orders_received: conn.eventsReceived('orders'),
            market_updates_received: conn.eventsReceived('market'),
            frames_sent: stats.framesOut,
            events_sent: stats.eventsOut,
            last_sequence_number: conn.lastSequenceNumber,
          };
        },
      };
      const out: Record<string, unknown> = {};
      for (const part of include as InitialStatePart[]) out[part] = parts[part]();
      conn.send('initial_state', { success: true, account, data: out }, id);
    },

    command: async (conn, data, id) => {
      const commandId = data.command_id ?? id;
      const fail = (code: string, message: string) =>
        conn.send('command_result', { success: false, action: data.action, command_id: commandId, error: { code, message } }, id);
      if (!conn.principal.canTrade) return fail(ErrorCode.FORBIDDEN, 'this token may not trade');
      const account = this.#account(conn, data.account, id);
      if (account === undefined) return;
      const handler = this.ctx.commands;
      if (!handler || !handler.actions.includes(data.action)) {
        return fail(ErrorCode.UNKNOWN_COMMAND, `unknown command "${data.action}"${handler ? `; known: ${handler.actions.join(', ')}` : ': no engine accepts commands'}`);
      }
      // Hold this connection's live events until the result is out: result first, then its events.
      conn.cork();
      try {
        const { outcome } = await runCommand(
          handler,
          { ...data, command_id: commandId },
          { principal: conn.principal, account, connectionId: conn.id },
          this.ctx.commandTimeoutMs,
        );
        conn.send('command_result', { success: outcome.success, action: data.action, command_id: commandId, result: outcome.result, error: outcome.error }, id);
      } finally {
        conn.uncork();
      }
    },

    ping: (conn, data, id) => {
      conn.send('pong', Object.keys(data).length > 0 ? { data } : {}, id);
    },

    auth: async (conn, data, id) => {
      try {
        const principal = await this.ctx.auth.verify(data.token);
        this.#authenticate(conn, principal);
        conn.send('authenticated', authenticatedFields(principal), id);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        if (err.reason === 'unavailable') {
          // The key server is down, not the token bad: the client retries with the same one.
          conn.log.warn({ reason: err.message }, 'could not verify a token: the JWKS is unavailable');
          conn.sendError(ErrorCode.UNAVAILABLE, err.message, id);
          conn.close(CloseCode.TRY_AGAIN_LATER, 'cannot verify tokens right now');
          return;
        }
        conn.log.info({ reason: err.message }, 'refused a token');
        conn.sendError(ErrorCode.UNAUTHORIZED, err.message, id);
        conn.close(CloseCode.UNAUTHORIZED, 'unauthorized');
      }
    },
  };

  #authenticate(conn: Connection, principal: Principal): void {
    conn.setPrincipal(principal);
    // Streams the new token may not read are dropped.
    for (const stream of conn.subscribedStreams()) {
      const ref = parseStream(stream);
      if (ref && !canReadStream(principal, ref)) this.ctx.fanout.unsubscribe(conn, stream);
    }
  }

  /** The account a request is about (see resolveAccount); undefined after sending the error. */
  #account(conn: Connection, named: string | undefined, id: string | undefined): string | undefined {
    const resolved = resolveAccount(conn.principal, named, this.ctx.config.defaultAccount);
    if (resolved.ok) return resolved.account;
    conn.sendError(resolved.code, resolved.message, id);
    return undefined;
  }
}

export function authenticatedFields(principal: Principal): ServerMessageFields<'authenticated'> {
  return { subject: principal.subject ?? undefined, accounts: principal.accounts, can_trade: principal.canTrade };
}

function describe(issues: readonly { path: readonly PropertyKey[]; message: string }[], what: string): string {
  const issue = issues[0];
  if (!issue) return `invalid ${what}`;
  const path = issue.path.map(String).join('.');
  return `invalid ${what}: ${path ? `${path}: ` : ''}${issue.message}`;
}
