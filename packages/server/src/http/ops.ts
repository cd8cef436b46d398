/**
 * The operator's endpoints: health, Prometheus metrics, the dashboard's WARN/ERROR
 * logs and the admin list of connections.
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
