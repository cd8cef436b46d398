/**
 * The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json` and built by
 * @fastify/swagger from the routes as they are registered: paths, parameters and
 * bodies come from each route's zod schemas (fastify-type-provider-zod's
 * `jsonSchemaTransform`), so a new route or field appears without anyone writing it
 * down. What a route's schema cannot say (what it is for, who may call it, what it
 * answers) is in ROUTE_DOCS below, keyed by method and path; the response schemas there
 * only document (they do not serialize), and specs.test.ts checks real answers against
 * them. The WebSocket contract is docs/asyncapi.yaml.
 *
 * Registered before the routes (its onRoute hook collects them), and outside `/api/`,
 * so a GET without `Origin`, a bot or a browser on any page, reads it without a token.
 */
import { createRequire } from 'node:module';
import swagger, { type SwaggerTransform } from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Pattern, RestErrorBody, Signal, Snapshot, StateSyncData, StreamEventsPage, StreamPositionSchema } from '@tradesync/protocol';

export const OPENAPI_PATH = '/openapi.json';

interface ResponseDoc {
  readonly description: string;
  readonly schema: z.ZodType;
  /** `application/json` unless said. */
  readonly contentType?: string;
}

interface RouteDoc {
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly Tag[];
  /** Who may call it: `api` routes take a token when auth is on; `metrics` takes the metrics token when one is set. */
  readonly security?: 'api' | 'metrics';
  readonly responses: Readonly<Record<number, ResponseDoc>>;
}

const TAGS = {
  state: 'What the desk holds: snapshots, signals, patterns.',
  streams: "A stream's log: the events after an offset.",
  producers: 'Publishing events and sending commands.',
  operations: 'Health, metrics, logs and the admin view, for operators.',
} as const;
type Tag = keyof typeof TAGS;

/* The answers, as the handlers in api.ts and ops.ts build them: loose, as readers should be (a newer gateway may add fields). */

const StreamSnapshots = z.record(z.string(), Snapshot);
const SnapshotResponse = StateSyncData.extend({
  success: z.boolean(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  snapshots: StreamSnapshots.optional(),
});
const SignalsResponse = z.looseObject({ account: z.string(), signals: z.array(Signal), epoch: z.string().nullable(), offset: z.number().int().nonnegative() });
const PatternResponse = z.looseObject({ account: z.string(), pattern: Pattern });
const TrimmedBody = RestErrorBody.extend({ epoch: z.string(), first_offset: z.number().int().nonnegative(), head: z.number().int().nonnegative() });
const PublishProblem = z.looseObject({ index: z.number().int().nonnegative(), code: z.string(), message: z.string() });
const PublishRefused = RestErrorBody.extend({ problems: z.array(PublishProblem).optional() });
const PublishResponse = z.looseObject({
  success: z.literal(true),
  offsets: z.array(StreamPositionSchema.extend({ stream: z.string(), offset: z.number().int().positive(), type: z.string() })),
});
const CommandResult = z.looseObject({
  type: z.literal('command_result'),
  action: z.string(),
  command_id: z.string().optional(),
  success: z.boolean(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.looseObject({ code: z.string(), message: z.string() }).optional(),
});
const LogsResponse = z.looseObject({ success: z.literal(true), accepted: z.number().int().nonnegative(), rejected: z.number().int().nonnegative() });
const Health = z.looseObject({
  status: z.enum(['ok', 'unhealthy']),
  engine: z.looseObject({ kind: z.string(), ok: z.boolean(), detail: z.string().optional() }),
  connections: z.number().int().nonnegative(),
  streams: z.number().int().nonnegative(),
  uptime_seconds: z.number().int().nonnegative(),
  timestamp: z.string(),
});
const ConnectionsResponse = z.looseObject({
  count: z.number().int().nonnegative(),
  connections: z.array(
    z.looseObject({
      connection_id: z.string(),
      connected_at: z.string(),
      subject: z.string().nullable(),
      authenticated: z.boolean(),
      subscriptions: z.array(z.looseObject({ stream: z.string(), epoch: z.string(), offset: z.number().int().nonnegative(), max_rate: z.number().optional() })),
      messages_in: z.number().int().nonnegative(),
      frames_out: z.number().int().nonnegative(),
      events_out: z.number().int().nonnegative(),
      last_sequence_number: z.number().int(),
      last_seen: z.string(),
      buffered_bytes: z.number().int().nonnegative(),
    }),
  ),
});
const OpenApiDocument = z.looseObject({ openapi: z.string(), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) });

const refused = (description: string): ResponseDoc => ({ description, schema: RestErrorBody });
const BAD_REQUEST = refused('`INVALID_MESSAGE`: the query or body does not fit the schema; `INVALID_STREAM`: a malformed stream name');
const UNAUTHORIZED = refused('`UNAUTHORIZED`: auth is on and the request has no valid token');
const FORBIDDEN = refused('`FORBIDDEN`: the token does not grant this account or action; `ORIGIN_NOT_ALLOWED`: a request from a web page of a foreign origin');
const UNAVAILABLE = refused('`UNAVAILABLE`: the event log (engine), or the token keys, cannot be reached');

/** Every route's documentation, keyed `METHOD /path` as Fastify registers it; `hidden` leaves a route out. */
export const ROUTE_DOCS: Readonly<Record<string, RouteDoc | 'hidden'>> = {
  'GET /api/state/snapshot': {
    summary: 'The whole picture of an account',
    description:
      'The same data as the WebSocket `state_sync_response`. With `streams=a,b` also `snapshots`: the exact state of each stream with its position, which clients use while their socket is down and later resume from. A part whose stream cannot be read from the event log right now is null (a named stream is left out of `snapshots`), the stream is listed in `failed_streams`, and `success` is false with an `UNAVAILABLE` error; the rest is served (200).',
    tags: ['state'],
    security: 'api',
    responses: { 200: { description: 'The account\'s state', schema: SnapshotResponse }, 400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 503: UNAVAILABLE },
  },
  'GET /api/v1/signals': {
    summary: 'Signals created or updated since a time',
    description: '`since` is an ISO-8601 time; without it, every signal the stream holds.',
    tags: ['state'],
    security: 'api',
    responses: { 200: { description: 'The signals, with the signals stream\'s position', schema: SignalsResponse }, 400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN },
  },
  'GET /api/v1/patterns/:id': {
    summary: 'The whole pattern a `pattern_detected` event links to',
    tags: ['state'],
    security: 'api',
    responses: {
      200: { description: 'The pattern', schema: PatternResponse },
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      404: refused('`NOT_FOUND`: no signals stream of the account holds that pattern'),
    },
  },
  'GET /api/v1/streams/:stream/events': {
    summary: "A stream's events after an offset, oldest first",
    tags: ['streams'],
    security: 'api',
    responses: {
      200: { description: 'The events, with the stream\'s epoch, head and oldest kept offset', schema: StreamEventsPage },
      400: BAD_REQUEST,
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      410: { description: '`HISTORY_TRIMMED`: `after` is older than the kept history; take a snapshot', schema: TrimmedBody },
      503: UNAVAILABLE,
    },
  },
  'POST /api/v1/events': {
    summary: 'Publish events',
    description: 'A JSON array of `{stream, type, data}` (or `{events: [...]}`), at most 10000, validated all or nothing. Answered once the events are durable. Needs a token with `publish: true` when auth is on.',
    tags: ['producers'],
    security: 'api',
    responses: {
      200: { description: 'The offset each event was given, in order', schema: PublishResponse },
      400: { description: '`INVALID_EVENT` / `INVALID_STREAM` with the `problems` of each refused event, or `INVALID_MESSAGE`', schema: PublishRefused },
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      413: refused('`PAYLOAD_TOO_LARGE`: more than 10000 events, or a body over `limits.max_body_bytes`'),
      503: UNAVAILABLE,
    },
  },
  'POST /api/v1/commands': {
    summary: 'Send a command to the engine',
    description: 'As the WebSocket `command`: `{action, command_id?, account?, ...}`. A `command_id` makes a repeat harmless. Needs a token with `trade: true` when auth is on.',
    tags: ['producers'],
    security: 'api',
    responses: {
      200: { description: 'The command succeeded', schema: CommandResult },
      400: refused('`UNKNOWN_COMMAND`: no engine accepts this action; `INVALID_MESSAGE`: no `action`'),
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      422: { description: 'The command failed: `error` says why', schema: CommandResult },
      504: { description: '`TIMEOUT`: the engine did not answer in time (the command may still run once)', schema: CommandResult },
    },
  },
  'POST /api/logs': {
    summary: "The dashboard's WARN and ERROR logs",
    description: '`{logs: [{level, message, ...}]}` (or a bare array), at most 1000; only `warn` and `error` entries are kept, the others are counted as rejected. Limited per client address.',
    tags: ['operations'],
    security: 'api',
    responses: {
      200: { description: 'How many entries were logged and refused', schema: LogsResponse },
      400: BAD_REQUEST,
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      429: refused('`RATE_LIMITED`: more than `limits.log_requests_per_minute` from this address'),
    },
  },
  'POST /api/client-metrics': {
    summary: 'What a client counted since its previous report',
    description: 'Reconnect attempts and successes and toasts shown (deltas), and the largest resync buffer held meanwhile, exported in `/metrics`. Limited per client address, like `/api/logs`.',
    tags: ['operations'],
    security: 'api',
    responses: {
      200: { description: 'Counted', schema: z.looseObject({ success: z.literal(true) }) },
      400: BAD_REQUEST,
      401: UNAUTHORIZED,
      403: FORBIDDEN,
      429: refused('`RATE_LIMITED`: more than `limits.log_requests_per_minute` from this address'),
    },
  },
  'GET /health': {
    summary: 'Whether the gateway and its engine are up',
    tags: ['operations'],
    responses: { 200: { description: 'Healthy', schema: Health }, 503: { description: 'The engine is down', schema: Health } },
  },
  'GET /metrics': {
    summary: 'Prometheus metrics',
    tags: ['operations'],
    security: 'metrics',
    responses: {
      200: { description: 'The Prometheus text exposition format', schema: z.string(), contentType: 'text/plain' },
      401: refused('`UNAUTHORIZED`: a `metrics_token` is configured and the request does not carry it'),
    },
  },
  'GET /api/admin/websocket/connections': {
    summary: 'Every WebSocket connection',
    description: 'With its subscriptions, counters and send buffer. Needs a token with `accounts: "*"` when auth is on.',
    tags: ['operations'],
    security: 'api',
    responses: { 200: { description: 'The connections of this node', schema: ConnectionsResponse }, 401: UNAUTHORIZED, 403: FORBIDDEN },
  },
  [`GET ${OPENAPI_PATH}`]: {
    summary: 'This document',
    tags: ['operations'],
    responses: { 200: { description: 'The OpenAPI document of the REST API', schema: OpenApiDocument } },
  },
  // The dashboard (or, when it is not built, a page saying how to build it): a web page, not an API.
  'GET /': 'hidden',
};

/** `api` routes need a token only when auth is on (it is off on loopback by default): the empty requirement says so. */
const SECURITY = {
  api: [{ bearer: [] }, { token: [] }, {}],
  metrics: [{ metricsToken: [] }, {}],
} as const;

/** Adds a route's ROUTE_DOCS entry to its schema, then lets fastify-type-provider-zod turn the zod schemas into JSON Schema. */
const documentRoute: SwaggerTransform = (input) => {
  const method = [input.route.method].flat().find((m) => m !== 'HEAD') ?? 'GET';
  const doc = ROUTE_DOCS[`${method} ${input.url}`];
  if (doc === 'hidden') return { schema: { hide: true }, url: input.url };
  if (doc === undefined) return jsonSchemaTransform(input);
  const response = Object.fromEntries(
    Object.entries(doc.responses).map(([status, r]) => [status, { description: r.description, content: { [r.contentType ?? 'application/json']: { schema: r.schema } } }]),
  );
  const schema = {
    ...input.schema,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: doc.tags,
    ...(doc.security ? { security: SECURITY[doc.security] } : {}),
    response,
  };
  return jsonSchemaTransform({ ...input, schema });
};

/** Registers @fastify/swagger (before any route, so it sees them all) and `GET /openapi.json`. */
// Read at run time rather than imported: the package's own package.json sits outside the
// compiled folder, and `../../package.json` is the same file from src/http and dist/http.
const serverPackage = createRequire(import.meta.url)('../../package.json') as { version: string };

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'TradeSync REST API',
        version: serverPackage.version,
        description: [
          'The REST half of the TradeSync gateway, on the same port as the WebSocket `/ws` (described by docs/asyncapi.yaml; docs/PROTOCOL.md explains both).',
          '',
          'Every failure answers `{success: false, error: {code, message}}` with the codes of the WebSocket contract. A request from a web page of a foreign',
          'origin (its `Origin` header) to `/api/…`, or any POST from one, answers 403 `ORIGIN_NOT_ALLOWED`; allowed origins get CORS. With auth on',
          '(required when the gateway binds a non-loopback address), `/api/…` takes `Authorization: Bearer <token>` or `?token=`.',
        ].join('\n'),
      },
      tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT with `accounts`, `trade`, `publish` claims (see docs/PROTOCOL.md, Authentication).' },
          token: { type: 'apiKey', in: 'query', name: 'token', description: 'The same JWT as `?token=`.' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'The configured `metrics_token`.' },
        },
      },
    },
    transform: documentRoute,
  });
  app.get(OPENAPI_PATH, async () => app.swagger());
}
