/**
 * What every HTTP request passes before a route sees it: the Host and Origin checks
 * (see origin.ts), CORS for the origins an operator allowed, and the rate limiter that
 * routes opt into. Registered (awaited) before the routes, so their options apply.
 */
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { ErrorCode } from '@tradesync/protocol';
import type { GatewayContext } from '../context.js';
import { MAX_NESTING, nestedDeeperThan } from '../nesting.js';

/** Requests that act (publish, command, log) refuse a foreign page; so does the API, which reads the desk. */
const guarded = (method: string, url: string): boolean => method !== 'GET' && method !== 'HEAD' ? true : url.startsWith('/api/');

export async function registerGuards(app: FastifyInstance, ctx: GatewayContext): Promise<void> {
  // Both hooks take `done` rather than being async: they run on every request (every
  // publish), and an async hook costs a promise and a microtask turn each time.
  app.addHook('onRequest', (req, reply, done) => {
    if (!ctx.origins.allowsHost(req.headers.host)) {
      ctx.metrics.requestsRefused.inc({ reason: 'host' });
      req.log.warn({ host: req.headers.host, remote: req.ip, url: req.url }, 'refused a request naming a host this gateway does not answer to');
      void reply.code(403).send({ success: false, error: { code: ErrorCode.ORIGIN_NOT_ALLOWED, message: `host "${String(req.headers.host)}" is not served here` } });
      return;
    }
    const origin = req.headers.origin;
    if (origin === undefined || ctx.origins.allows(origin) || !guarded(req.method, req.url)) return done();
    ctx.metrics.requestsRefused.inc({ reason: 'origin' });
    req.log.warn({ origin, remote: req.ip, method: req.method, url: req.url }, 'refused a request from a foreign origin');
    void reply.code(403).send({
      success: false,
      error: { code: ErrorCode.ORIGIN_NOT_ALLOWED, message: `origin ${origin} is not allowed; add it to allowed_origins to let that page use the gateway` },
    });
  });

  // Bodies are parsed by now; one nested too deep never reaches a route (see nesting.ts).
  app.addHook('preValidation', (req, reply, done) => {
    if (req.body === undefined || !nestedDeeperThan(req.body)) return done();
    req.log.warn({ remote: req.ip, url: req.url }, 'refused a request body nested too deep');
    void reply.code(400).send({ success: false, error: { code: ErrorCode.INVALID_MESSAGE, message: `body nested deeper than ${MAX_NESTING} levels` } });
  });

  // Only origins we accept get CORS headers; a foreign page's preflight is refused above.
  await app.register(cors, {
    origin: (origin, done) => done(null, origin !== undefined && ctx.origins.judge(origin) !== 'foreign'),
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type'],
    maxAge: 600,
  });

  await app.register(rateLimit, {
    global: false,
    keyGenerator: (req) => req.ip,
    // Thrown into the error handler, which answers RATE_LIMITED like the WebSocket side.
    errorResponseBuilder: (_req, context) =>
      Object.assign(new Error(`more than ${context.max} requests per ${context.after}; try again in ${Math.ceil(context.ttl / 1000)} s`), { statusCode: 429 }),
  });
}
