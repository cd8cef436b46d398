/**
 * The REST API of the contract: state snapshots, signals, a stream's events, publishing
 * and commands. Each route declares its querystring, params and body as zod schemas
 * (fastify-type-provider-zod), so handlers read typed input; who may call it is
 * checked first, in `preValidation` hooks (see principal.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CommandData, ErrorCode, parseStream, type EventInput, type SignalsState } from '@tradesync/protocol';
import { canReadStream, canUseAccount } from '../auth.js';
import { runCommand } from '../commands.js';
import type { GatewayContext } from '../context.js';
import type { StoredEvent } from '../engines/engine.js';
import { validateEvents } from '../publish.js';
import { buildStateSync, stateSyncOutcome, unavailableStream } from '../state/views.js';
import { sendError } from './errors.js';
import type { Access } from './principal.js';

/** Every API route may carry `?token=` (read by the authenticate hook) and most `?account=`. */
const Caller = { token: z.string().optional(), account: z.string().optional() };

const SnapshotQuery = z.looseObject({ ...Caller, session_id: z.string().optional(), streams: z.string().optional() });
const SignalsQuery = z.looseObject({ ...Caller, since: z.string().optional() });
const StreamParams = z.object({ stream: z.string() });
const EventsQuery = z.looseObject({
  token: z.string().optional(),
  after: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});
/** A JSON array of events, or `{events: [...]}`; the 10,000 cap is checked by the route (413, not 400). */
const PublishBody = z.union([z.array(z.unknown()).min(1), z.looseObject({ events: z.array(z.unknown()).min(1) })]);
const CommandsQuery = z.looseObject(Caller);
const PatternParams = z.object({ id: z.string().min(1) });
const PatternQuery = z.looseObject(Caller);

export interface ApiDeps {
  readonly access: Access;
  /** Appends already validated events (counted in metrics). */
  readonly publish: (events: readonly EventInput[]) => Promise<readonly StoredEvent[]>;
}

export function registerApi(base: FastifyInstance, ctx: GatewayContext, { access, publish }: ApiDeps): void {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const { authenticate, principalOf, accountOf } = access;

  /** Hook for `/streams/:stream/…`: 400 for a malformed stream, 403 for one the caller may not read (before the query is judged). */
  const readableStream = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const params: unknown = req.params;
    const stream: unknown = typeof params === 'object' && params !== null ? Reflect.get(params, 'stream') : undefined;
    const ref = typeof stream === 'string' ? parseStream(stream) : undefined;
    if (!ref) return sendError(reply, 400, ErrorCode.INVALID_STREAM, `unknown or malformed stream "${String(stream)}"`);
    if (!canReadStream(principalOf(req), ref)) return sendError(reply, 403, ErrorCode.FORBIDDEN, `not allowed to read ${String(stream)}`);
    return undefined;
  };

  app.get('/api/state/snapshot', { schema: { querystring: SnapshotQuery }, preValidation: [authenticate] }, async (req, reply) => {
    const principal = principalOf(req);
    const account = accountOf(req, reply, req.query.account);
    if (!account) return reply;
    const sync = buildStateSync(ctx.store, account, req.query.session_id || undefined);
    if (!req.query.streams) return { ...stateSyncOutcome(sync), ...sync };
    // `streams=a,b`: also the exact state of each stream with its position, so a client
    // whose socket is down (degraded mode) can replace its replicas and later resume.
    // A stream this node knows to be behind its log is left out and named as failed.
    const snapshots: Record<string, { epoch: string; offset: number; state: unknown }> = {};
    const failed = [...sync.failed_streams];
    for (const name of req.query.streams.split(',').filter(Boolean).slice(0, 100)) {
      const ref = parseStream(name);
      if (!ref) return sendError(reply, 400, ErrorCode.INVALID_STREAM, `unknown or malformed stream "${name}"`);
      if (!canReadStream(principal, ref)) return sendError(reply, 403, ErrorCode.FORBIDDEN, `not allowed to read ${name}`);
      const why = ctx.store.unavailable(ref.name);
      if (why !== undefined) {
        if (!failed.some((f) => f.stream === ref.name)) failed.push(unavailableStream(ref.name, why));
        continue;
      }
      const entry = await ctx.store.entry(ref);
      snapshots[name] = { epoch: entry.epoch, offset: entry.head, state: entry.state };
    }
    const withSnapshots = { ...sync, failed_streams: failed };
    return { ...stateSyncOutcome(withSnapshots), ...withSnapshots, snapshots };
  });

  const sinceInvalid = 'since must be an ISO-8601 time';
  app.get('/api/v1/signals', { schema: { querystring: SignalsQuery }, config: { invalidInput: sinceInvalid }, preValidation: [authenticate] }, async (req, reply) => {
    const account = accountOf(req, reply, req.query.account);
    if (!account) return reply;
    const { since } = req.query;
    const sinceMs = since === undefined ? 0 : Date.parse(since);
    if (Number.isNaN(sinceMs)) return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, sinceInvalid);
    const state = ctx.store.stateOf(`signals:${account}`) as SignalsState;
    const signals = Object.values(state.signals).filter((s) => {
      const at = lastChangedAt(s);
      return at === undefined ? since === undefined : at >= sinceMs;
    });
    const entry = ctx.store.get(`signals:${account}`);
    return { account, signals, epoch: entry?.epoch ?? null, offset: entry?.head ?? 0 };
  });

  app.get('/api/v1/patterns/:id', { schema: { params: PatternParams, querystring: PatternQuery }, preValidation: [authenticate] }, async (req, reply) => {
    const account = accountOf(req, reply, req.query.account);
    if (!account) return reply;
    const pattern = (ctx.store.stateOf(`signals:${account}`) as SignalsState).patterns[req.params.id];
    if (!pattern) return sendError(reply, 404, ErrorCode.NOT_FOUND, `no pattern "${req.params.id}" on signals:${account}`);
    return { account, pattern };
  });

  app.get(
    '/api/v1/streams/:stream/events',
    {
      schema: { params: StreamParams, querystring: EventsQuery },
      config: { invalidInput: 'after and limit must be non-negative integers (limit at most 10000)' },
      preValidation: [authenticate, readableStream],
    },
    async (req, reply) => {
      const { stream } = req.params;
      const { after, limit } = req.query;
      const head = await ctx.engine.head(stream);
      const result = await ctx.engine.read(stream, after, limit);
      if (result.trimmed) {
        return sendError(reply, 410, ErrorCode.HISTORY_TRIMMED, `events after ${after} are no longer kept; take a snapshot`, {
          epoch: head.epoch,
          first_offset: head.first,
          head: head.offset,
        });
      }
      return { stream, epoch: head.epoch, head: head.offset, first_offset: head.first, events: result.events };
    },
  );

  app.post(
    '/api/v1/events',
    {
      schema: { body: PublishBody },
      config: { invalidInput: 'send a non-empty JSON array of {stream, type, data} (or {events: [...]})' },
      preValidation: [authenticate, access.mayPublish],
    },
    async (req, reply) => {
      const principal = principalOf(req);
      const list = Array.isArray(req.body) ? req.body : req.body.events;
      if (list.length > 10_000) return sendError(reply, 413, ErrorCode.PAYLOAD_TOO_LARGE, 'at most 10000 events per request');
      const { events, problems } = validateEvents(list);
      const first = problems[0];
      if (first) return sendError(reply, 400, first.code, `event ${first.index}: ${first.message}`, { problems });
      for (const event of events) {
        const ref = parseStream(event.stream);
        if (ref && ref.kind !== 'market' && !canUseAccount(principal, ref.account)) {
          return sendError(reply, 403, ErrorCode.FORBIDDEN, `not allowed to publish to ${event.stream}`);
        }
      }
      const stored = await publish(events);
      return { success: true, offsets: stored.map((e) => ({ stream: e.stream, epoch: e.epoch, offset: e.offset, type: e.type })) };
    },
  );

  app.post(
    '/api/v1/commands',
    {
      schema: { querystring: CommandsQuery, body: CommandData },
      config: { invalidInput: 'a command needs {action: string, ...}' },
      preValidation: [authenticate, access.mayTrade],
    },
    async (req, reply) => {
      const principal = principalOf(req);
      const command = req.body;
      // An account in the body wins over `?account=`; either is checked as over WebSocket.
      const account = accountOf(req, reply, command.account ?? req.query.account);
      if (!account) return reply;
      const handler = ctx.commands;
      if (!handler || !handler.actions.includes(command.action)) {
        return sendError(reply, 400, ErrorCode.UNKNOWN_COMMAND, `unknown command "${command.action}"`);
      }
      const { outcome, timedOut } = await runCommand(handler, command, { principal, account }, ctx.commandTimeoutMs);
      const status = outcome.success ? 200 : timedOut ? 504 : 422;
      return reply.code(status).send({ type: 'command_result', action: command.action, command_id: command.command_id, ...outcome });
    },
  );
}

/**
 * When a signal last changed, from the times it carries: a signal executed or rejected
 * after it was created says so in `executed_at` / `rejected_at`, not in `updated_at`, and
 * a client catching up with `since` must learn of it. Undefined when it carries none.
 */
const SIGNAL_TIMES = ['updated_at', 'executed_at', 'rejected_at', 'expired_at', 'created_at', 'timestamp'] as const;
function lastChangedAt(signal: Readonly<Record<string, unknown>>): number | undefined {
  let latest: number | undefined;
  for (const field of SIGNAL_TIMES) {
    const value = signal[field];
    const at = typeof value === 'string' ? Date.parse(value) : Number.NaN;
    if (!Number.isNaN(at) && (latest === undefined || at > latest)) latest = at;
  }
  return latest;
}
