/**
 * The operator's endpoints: health, Prometheus metrics, the dashboard's WARN/ERROR
 * logs, what clients count (reconnects, resync buffers, toasts) and the admin list of
 * connections.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorCode } from '@tradesync/protocol';
import type { GatewayContext } from '../context.js';
import type { WebSocketGateway } from '../ws/gateway.js';
import { sendError } from './errors.js';
import type { Access } from './principal.js';

const LogEntry = z.looseObject({ level: z.string(), message: z.string().max(10_000) });
/** `{logs: [...]}` or a bare array; each entry is judged on its own (a bad one is counted, not fatal). */
const LogsBody = z.union([z.array(z.unknown()).max(1000), z.looseObject({ logs: z.array(z.unknown()).max(1000) })]);

/** Most of one kind a single report may add: a desk reports every few seconds, so anything near this is a bug or abuse. */
const MAX_REPORTED = 100_000;
const reported = z.number().int().min(0).max(MAX_REPORTED);
/**
 * What a client counted since its previous report (counters are deltas), and the
 * largest resync buffer it held meanwhile. Strict: a misspelt key is a 400, not a
 * number silently dropped.
 */
const ClientMetricsBody = z
  .strictObject({
    reconnect_attempts: reported.optional(),
    reconnect_successes: reported.optional(),
    toasts_shown: reported.optional(),
    resync_buffer_size: z.number().int().min(0).max(10_000_000).optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'send at least one of reconnect_attempts, reconnect_successes, toasts_shown, resync_buffer_size');
const clientMetricsInvalid =
  'send {reconnect_attempts?, reconnect_successes?, toasts_shown?: counts since your last report (integers 0-100000), resync_buffer_size?: the largest number of live events held while a stream synced} with at least one of them';

export interface OpsDeps {
  readonly access: Access;
  readonly ws: WebSocketGateway;
  readonly startedAt: Date;
}

export function registerOps(base: FastifyInstance, ctx: GatewayContext, { access, ws, startedAt }: OpsDeps): void {
  const app = base.withTypeProvider<ZodTypeProvider>();

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
        return sendError(reply, 401, ErrorCode.UNAUTHORIZED, 'GET /metrics needs Authorization: Bearer <metrics_token>');
      }
    }
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  // The dashboard's WARN/ERROR lines. With auth on it needs a token like any API call,
  // and every address is rate-limited, so nobody can fill the server's log.
  const logsLimit = { max: ctx.config.limits.logRequestsPerMinute, timeWindow: 60_000 };
  app.post(
    '/api/logs',
    {
      schema: { body: LogsBody },
      config: { rateLimit: logsLimit, invalidInput: 'send {logs: [{level, message, ...}]} (at most 1000)' },
      preValidation: [access.authenticate],
    },
    async (req) => {
      const list = Array.isArray(req.body) ? req.body : req.body.logs;
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
    },
  );

  // What only a client sees (seed 002's reconnect rate, resync buffer size, toast rate),
  // as numbers rather than log lines: successes and toasts are not warnings, and counting
  // log messages would tie the metrics to their wording. Same guards as /api/logs: the
  // Origin check (every POST), a token when auth is on, and a per-address rate limit.
  app.post(
    '/api/client-metrics',
    {
      schema: { body: ClientMetricsBody },
      config: { rateLimit: logsLimit, invalidInput: clientMetricsInvalid },
      preValidation: [access.authenticate],
    },
    async (req) => {
      const { reconnect_attempts, reconnect_successes, toasts_shown, resync_buffer_size } = req.body;
      const m = ctx.metrics;
      m.clientReports.inc();
      if (reconnect_attempts) m.clientReconnectAttempts.inc(reconnect_attempts);
      if (reconnect_successes) m.clientReconnectSuccesses.inc(reconnect_successes);
      if (toasts_shown) m.clientToastsShown.inc(toasts_shown);
      if (resync_buffer_size !== undefined) m.clientResyncBuffer.set(resync_buffer_size);
      return { success: true };
    },
  );

  app.get('/api/admin/websocket/connections', { preValidation: [access.authenticate] }, async (req, reply) => {
    if (access.principalOf(req).accounts !== '*') return sendError(reply, 403, ErrorCode.FORBIDDEN, 'admin only (a token with accounts "*")');
    return {
      count: ws.connections.size,
      connections: [...ws.connections].map((c) => {
        const stats = c.stats;
        return {
          connection_id: c.id,
          connected_at: c.connectedAt.toISOString(),
          subject: c.principal.subject,
          authenticated: c.authenticated,
          subscriptions: c.positions(),
          messages_in: stats.messagesIn,
          frames_out: stats.framesOut,
          events_out: stats.eventsOut,
          last_sequence_number: c.lastSequenceNumber,
          last_seen: new Date(stats.lastSeen).toISOString(),
          buffered_bytes: stats.bufferedBytes,
        };
      }),
    };
  });
}
