import { timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CommandData, ErrorCode, parseStream, type EventInput, type SignalsState } from '@tradesync/protocol';
import { AuthError, ANONYMOUS, canReadStream, canUseAccount, resolveAccount, type Principal } from '../auth.js';
import { runCommand } from '../commands.js';
import type { GatewayContext } from '../context.js';
import { EngineUnavailableError, type StoredEvent } from '../engines/engine.js';
import { validateEvents } from '../publish.js';
import { buildStateSync } from '../state/views.js';
import type { WebSocketGateway } from '../ws/gateway.js';

const EventsQuery = z.object({
  after: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

/** The REST half of the contract, on the same port as `/ws`. */
export interface RouteDeps {
  readonly ws: WebSocketGateway;
  readonly startedAt: Date;
  /** Appends already validated events (counted in metrics). */
  readonly publish: (events: readonly EventInput[]) => Promise<readonly StoredEvent[]>;
}

export function registerRoutes(app: FastifyInstance, ctx: GatewayContext, { ws, startedAt, publish }: RouteDeps): void {
  const error = (reply: FastifyReply, status: number, code: string, message: string, extra: Record<string, unknown> = {}) =>
    reply.code(status).send({ success: false, error: { code, message }, ...extra });

  /** The caller's principal from `Authorization: Bearer` or `?token=`; undefined after replying 401. */
  const principalOf = async (req: FastifyRequest, reply: FastifyReply): Promise<Principal | undefined> => {
    if (!ctx.auth.required) return ANONYMOUS;
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7) : (req.query as { token?: string }).token;
    if (!token) {
      error(reply, 401, ErrorCode.UNAUTHORIZED, 'a bearer token is required');
      return undefined;
    }
    try {
      return await ctx.auth.verify(token);
    } catch (err) {
      if (err instanceof AuthError && err.reason === 'unavailable') error(reply, 503, ErrorCode.UNAVAILABLE, err.message);
      else error(reply, 401, ErrorCode.UNAUTHORIZED, err instanceof AuthError ? err.message : 'invalid token');
      return undefined;
    }
  };

  /** The account named (else `?account=`), resolved as over WebSocket; undefined after replying 400 or 403. */
  const accountOf = (req: FastifyRequest, reply: FastifyReply, principal: Principal, named?: string): string | undefined => {
    const resolved = resolveAccount(principal, named ?? (req.query as { account?: string }).account, ctx.config.defaultAccount);
    if (resolved.ok) return resolved.account;
    error(reply, resolved.code === ErrorCode.FORBIDDEN ? 403 : 400, resolved.code, resolved.message);
    return undefined;
  };

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof EngineUnavailableError) return error(reply, 503, ErrorCode.UNAVAILABLE, 'the event log is unavailable');
    const status = (err as { statusCode?: number }).statusCode;
    // A body over Fastify's bodyLimit is a 413: name it PAYLOAD_TOO_LARGE like the WebSocket side does.
    if (status === 413) return error(reply, status, ErrorCode.PAYLOAD_TOO_LARGE, err.message);
    if (status === 429) {
      req.log.warn({ remote: req.ip, url: req.url }, 'request rate limited');
      return error(reply, status, ErrorCode.RATE_LIMITED, err.message);
    }
    if (status && status >= 400 && status < 500) return error(reply, status, ErrorCode.INVALID_MESSAGE, err.message);
    req.log.error({ err }, 'request failed');
    return error(reply, 500, ErrorCode.INTERNAL, 'internal error');
  });

  app.get('/health', async (_req, reply) => {
    const engine = await ctx.engine.health();
    return reply.code(engine.ok ? 200 : 503).send({
      status: engine.ok ? 'ok' : 'unhealthy',
      engine: { kind: ctx.engine.kind, ...engine },
      connections: ws.connections.size,
      streams: [...ctx.store.entries()].length,
      uptime_seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      timestamp: new Date().toISOString(),
    });
  });

  const metricsToken = ctx.config.metricsToken === undefined ? undefined : Buffer.from(`Bearer ${ctx.config.metricsToken}`);
  app.get('/metrics', async (req, reply) => {
    if (metricsToken !== undefined) {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== metricsToken.length || !timingSafeEqual(given, metricsToken)) {
        req.log.warn({ remote: req.ip }, 'refused /metrics: missing or wrong metrics token');
        return error(reply, 401, ErrorCode.UNAUTHORIZED, 'GET /metrics needs Authorization: Bearer <metrics_token>');
      }
    }
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.get('/api/state/snapshot', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    const account = accountOf(req, reply, principal);
    if (!account) return reply;
    const query = req.query as { session_id?: string; streams?: string };
    const sync = buildStateSync(ctx.store, account, query.session_id || undefined);
    if (!query.streams) return sync;
    // `streams=a,b`: also the exact state of each stream with its position, so a client
    // whose socket is down (degraded mode) can replace its replicas and later resume.
    const snapshots: Record<string, { epoch: string; offset: number; state: unknown }> = {};
    for (const name of query.streams.split(',').filter(Boolean).slice(0, 100)) {
      const ref = parseStream(name);
      if (!ref) return error(reply, 400, ErrorCode.INVALID_STREAM, `unknown or malformed stream "${name}"`);
      if (!canReadStream(principal, ref)) return error(reply, 403, ErrorCode.FORBIDDEN, `not allowed to read ${name}`);
      const entry = await ctx.store.entry(ref);
      snapshots[name] = { epoch: entry.epoch, offset: entry.head, state: entry.state };
    }
    return { ...sync, snapshots };
  });

  app.get('/api/v1/signals', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    const account = accountOf(req, reply, principal);
    if (!account) return reply;
    const since = (req.query as { since?: string }).since;
    const sinceMs = since === undefined ? 0 : Date.parse(since);
    if (Number.isNaN(sinceMs)) return error(reply, 400, ErrorCode.INVALID_MESSAGE, 'since must be an ISO-8601 time');
    const state = ctx.store.stateOf(`signals:${account}`) as SignalsState;
    const signals = Object.values(state.signals).filter((s) => {
      const at = Date.parse(String(s.updated_at ?? s.created_at ?? s.timestamp ?? ''));
      return Number.isNaN(at) ? since === undefined : at >= sinceMs;
    });
    const entry = ctx.store.get(`signals:${account}`);
    return { account, signals, epoch: entry?.epoch ?? null, offset: entry?.head ?? 0 };
  });

  app.get('/api/v1/streams/:stream/events', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    const { stream } = req.params as { stream: string };
    const ref = parseStream(stream);
    if (!ref) return error(reply, 400, ErrorCode.INVALID_STREAM, `unknown or malformed stream "${stream}"`);
    if (!canReadStream(principal, ref)) return error(reply, 403, ErrorCode.FORBIDDEN, `not allowed to read ${stream}`);
    const query = EventsQuery.safeParse(req.query);
    if (!query.success) return error(reply, 400, ErrorCode.INVALID_MESSAGE, 'after and limit must be non-negative integers (limit at most 10000)');
    const head = await ctx.engine.head(stream);
    const result = await ctx.engine.read(stream, query.data.after, query.data.limit);
    if (result.trimmed) {
      return error(reply, 410, ErrorCode.HISTORY_TRIMMED, `events after ${query.data.after} are no longer kept; take a snapshot`, {
        epoch: head.epoch,
        first_offset: head.first,
        head: head.offset,
      });
    }
    return { stream, epoch: head.epoch, head: head.offset, first_offset: head.first, events: result.events };
  });

  app.post('/api/v1/events', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    if (!principal.canPublish) return error(reply, 403, ErrorCode.FORBIDDEN, 'this token may not publish');
    const body = req.body as unknown;
    const list = Array.isArray(body) ? body : (body as { events?: unknown } | null)?.events;
    if (!Array.isArray(list) || list.length === 0) {
      return error(reply, 400, ErrorCode.INVALID_MESSAGE, 'send a non-empty JSON array of {stream, type, data} (or {events: [...]})');
    }
    if (list.length > 10_000) return error(reply, 413, ErrorCode.PAYLOAD_TOO_LARGE, 'at most 10000 events per request');
    const { events, problems } = validateEvents(list);
    if (problems.length > 0) {
      const first = problems[0]!;
      return error(reply, 400, first.code, `event ${first.index}: ${first.message}`, { problems });
    }
    for (const event of events) {
      const ref = parseStream(event.stream)!;
      if (ref.kind !== 'market' && !canUseAccount(principal, ref.account)) {
        return error(reply, 403, ErrorCode.FORBIDDEN, `not allowed to publish to ${event.stream}`);
      }
    }
    const stored = await publish(events);
    return { success: true, offsets: stored.map((e) => ({ stream: e.stream, epoch: e.epoch, offset: e.offset, type: e.type })) };
  });

  app.post('/api/v1/commands', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    if (!principal.canTrade) return error(reply, 403, ErrorCode.FORBIDDEN, 'this token may not trade');
    const parsed = CommandData.safeParse(req.body);
    if (!parsed.success) return error(reply, 400, ErrorCode.INVALID_MESSAGE, 'a command needs {action: string, ...}');
    const command = parsed.data;
    // An account in the body wins over `?account=`; either is checked as over WebSocket.
    const account = accountOf(req, reply, principal, command.account);
    if (!account) return reply;
    const handler = ctx.commands;
    if (!handler || !handler.actions.includes(command.action)) {
      return error(reply, 400, ErrorCode.UNKNOWN_COMMAND, `unknown command "${command.action}"`);
    }
    const { outcome, timedOut } = await runCommand(handler, command, { principal, account }, ctx.commandTimeoutMs);
    const status = outcome.success ? 200 : timedOut ? 504 : 422;
    return reply.code(status).send({ type: 'command_result', action: command.action, command_id: command.command_id, ...outcome });
  });

  const LogEntry = z.looseObject({ level: z.string(), message: z.string().max(10_000) });
  // The dashboard's WARN/ERROR lines. With auth on it needs a token like any API call,
  // and every address is rate-limited, so nobody can fill the server's log.
  const logsLimit = { max: ctx.config.limits.logRequestsPerMinute, timeWindow: 60_000 };
  app.post('/api/logs', { config: { rateLimit: logsLimit } }, async (req, reply) => {
    if (ctx.auth.required && !(await principalOf(req, reply))) return reply;
    const body = req.body as unknown;
    const list = Array.isArray(body) ? body : (body as { logs?: unknown } | null)?.logs;
    if (!Array.isArray(list) || list.length > 1000) return error(reply, 400, ErrorCode.INVALID_MESSAGE, 'send {logs: [{level, message, ...}]} (at most 1000)');
    let accepted = 0;
    let rejected = 0;
    for (const raw of list) {
      const entry = LogEntry.safeParse(raw);
      const level = entry.success ? entry.data.level.toLowerCase() : '';
      // Only WARN and ERROR belong in the server's log; debug stays in the browser console.
      if (!entry.success || (level !== 'warn' && level !== 'warning' && level !== 'error')) {
        rejected++;
        continue;
      }
      const { message, level: _level, ...context } = entry.data;
      ctx.log[level === 'error' ? 'error' : 'warn']({ source: 'dashboard', ...context }, message);
      accepted++;
    }
    return { success: true, accepted, rejected };
  });

  app.get('/api/admin/websocket/connections', async (req, reply) => {
    const principal = await principalOf(req, reply);
    if (!principal) return reply;
    if (principal.accounts !== '*') return error(reply, 403, ErrorCode.FORBIDDEN, 'admin only (a token with accounts "*")');
    return {
      count: ws.connections.size,
      connections: [...ws.connections].map((c) => ({
        connection_id: c.id,
        connected_at: c.connectedAt.toISOString(),
        subject: c.principal.subject,
        authenticated: c.authenticated,
        subscriptions: [...c.subscriptions.values()].map((s) => ({ stream: s.stream, epoch: s.epoch, offset: s.delivered })),
        messages_in: c.messagesIn,
        frames_out: c.framesOut,
        events_out: c.eventsOut,
        last_sequence_number: c.lastSequenceNumber,
        last_seen: new Date(c.lastSeen).toISOString(),
        buffered_bytes: c.socket.bufferedAmount,
      })),
    };
  });
}
