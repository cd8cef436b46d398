/**
 * The configuration's one zod schema: every key with its default and validation, the
 * snake_case shape of the file, environment and flags, and its camelCase result with
 * durations in milliseconds. config.ts reads the sources and validates them with it.
 */
import proxyAddr from 'proxy-addr';
import { z } from 'zod';
import { isValidAccount } from '@tradesync/protocol';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;


const posInt = z.number().int().positive();
/** Durations are written in seconds (decimals allowed) and stored as whole milliseconds. */
const seconds = z.number().positive().max(365 * 24 * 3600);
const toMs = (s: number): number => Math.max(1, Math.round(s * 1000));
const nonEmpty = z.string().trim().min(1);

/** `scheme://host[:port]` exactly as a browser writes the Origin header (no path, no trailing slash), or `*`. */
/** What proxy-addr (Fastify's trustProxy) accepts for one trusted proxy. */
function isProxyAddress(value: string): boolean {
  try {
    proxyAddr.compile([value]);
    return true;
  } catch {
    return false;
  }
}

const originEntry = nonEmpty.refine((value) => value === '*' || normalizeOrigin(value) === value.toLowerCase(), {
  message: 'must be "*" or an origin such as https://desk.example.com or http://localhost:5173 (scheme, host and optional port; no path)',
});

/**
 * The snake_case shape shared by the file, env and flags. Every leaf has its default
 * here, so the schema alone defines both the validation and `DEFAULT_CONFIG`.
 * Sections use `prefault({})` so their inner defaults apply when a section is absent.
 */
export const rawSchema = z.strictObject({
  host: nonEmpty.default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8000),
  data_dir: nonEmpty.default('./data'),
  engine: z.enum(['embedded', 'redis']).default('embedded'),
  redis_url: nonEmpty.default('redis://127.0.0.1:6379'),
  simulator: z.boolean().default(true),
  insecure: z.boolean().default(false),
  default_account: z
    .string()
    .refine(isValidAccount, 'must be 1-64 characters of letters, digits, "_", "." or "-", starting with a letter or digit')
    .default('demo'),
  log_level: z.enum(LOG_LEVELS).default('info'),
  durability: z.enum(['full', 'normal']).default('full'),
  // How often each subscriber gets a stream's `stream_position` (0: never).
  position_interval_ms: z.number().int().min(0).default(5000),
  heartbeat: z
    .strictObject({
      ping_interval: seconds.default(30),
    })
    .prefault({}),
  limits: z
    .strictObject({
      max_payload_bytes: posInt.default(65_536),
      messages_per_second: z.number().positive().default(50),
      message_burst: posInt.default(100),
      max_subscriptions: posInt.default(100),
      max_buffered_bytes: posInt.default(8 * 1024 * 1024),
      max_connections: posInt.default(20_000),
      max_connections_per_ip: posInt.default(256),
      max_body_bytes: posInt.default(16 * 1024 * 1024),
      log_requests_per_minute: posInt.default(60),
    })
    .prefault({}),
  history: z
    .strictObject({
      max_events: posInt.default(10_000),
      max_age: seconds.default(24 * 3600),
      snapshot_every: posInt.default(1000),
      compact_interval: seconds.default(10),
      memory_window: posInt.default(1000),
      max_recovery_events: posInt.default(10_000),
    })
    .prefault({}),
  auth: z
    .strictObject({
      // Optional (no default) so an explicit `false` can be told apart from "not set".
      enabled: z.boolean().optional(),
      secret: nonEmpty.optional(),
      jwks_url: z.url({ protocol: /^https?$/ }).optional(),
      issuer: nonEmpty.optional(),
      audience: nonEmpty.optional(),
    })
    .prefault({})
    .superRefine((a, ctx) => {
      if (a.secret !== undefined && a.jwks_url !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['jwks_url'], message: 'set either auth.secret or auth.jwks_url, not both' });
      }
      if (a.enabled === true && a.secret === undefined && a.jwks_url === undefined) {
        ctx.addIssue({ code: 'custom', path: ['enabled'], message: 'auth is enabled but neither auth.secret nor auth.jwks_url is set' });
      }
    }),
  dashboard_dir: nonEmpty.optional(),
  // Web pages (besides the gateway's own) that may open the WebSocket and call the REST API.
  allowed_origins: z.array(originEntry).default([]),
  // Peers (a load balancer, a reverse proxy) whose X-Forwarded-For names the real client.
  trusted_proxies: z.array(nonEmpty.refine(isProxyAddress, 'must be an IP address, a CIDR range (10.0.0.0/8) or loopback, linklocal or uniquelocal')).default([]),
  // A bearer token that GET /metrics requires when set (Prometheus `authorization.credentials`).
  metrics_token: nonEmpty.optional(),
  // What the Redis engine requires of Redis before it acknowledges an append.
  redis_durability: z.enum(['fsync', 'aof', 'none']).default('fsync'),
  redis_wait_replicas: z.number().int().min(0).default(0),
});

const checkedSchema = rawSchema.superRefine((r, ctx) => {
  // A wildcard lets every web page on the internet drive the gateway; only a token (which
  // a foreign page cannot obtain) then stands between it and the desk.
  const authOn = r.auth.enabled ?? (r.auth.secret !== undefined || r.auth.jwks_url !== undefined);
  if (r.allowed_origins.includes('*') && !authOn) {
    ctx.addIssue({ code: 'custom', path: ['allowed_origins'], message: '"*" is allowed only with auth on (auth.secret or auth.jwks_url): without it any web page could read the desk and trade' });
  }
});

export const configSchema = checkedSchema.transform((r) => ({
  host: r.host,
  port: r.port,
  dataDir: r.data_dir,
  engine: r.engine,
  redisUrl: r.redis_url,
  simulator: r.simulator,
  insecure: r.insecure,
  defaultAccount: r.default_account,
  logLevel: r.log_level,
  durability: r.durability,
  heartbeat: { pingIntervalMs: toMs(r.heartbeat.ping_interval) },
  positionIntervalMs: r.position_interval_ms,
  limits: {
    maxPayloadBytes: r.limits.max_payload_bytes,
    messagesPerSecond: r.limits.messages_per_second,
    messageBurst: r.limits.message_burst,
    maxSubscriptions: r.limits.max_subscriptions,
    maxBufferedBytes: r.limits.max_buffered_bytes,
    maxConnections: r.limits.max_connections,
    maxConnectionsPerIp: r.limits.max_connections_per_ip,
    maxBodyBytes: r.limits.max_body_bytes,
    logRequestsPerMinute: r.limits.log_requests_per_minute,
  },
  history: {
    maxEvents: r.history.max_events,
    maxAgeMs: toMs(r.history.max_age),
    snapshotEvery: r.history.snapshot_every,
    compactIntervalMs: toMs(r.history.compact_interval),
    memoryWindow: r.history.memory_window,
    maxRecoveryEvents: r.history.max_recovery_events,
  },
  auth: {
    // Setting a secret or JWKS URL turns auth on unless `enabled: false` is explicit,
    // which lets an operator switch auth off temporarily without deleting the secret.
    enabled: r.auth.enabled ?? (r.auth.secret !== undefined || r.auth.jwks_url !== undefined),
    // Conditional spreads keep these keys optional in the inferred type.
    ...(r.auth.secret !== undefined ? { secret: r.auth.secret } : {}),
    ...(r.auth.jwks_url !== undefined ? { jwksUrl: r.auth.jwks_url } : {}),
    ...(r.auth.issuer !== undefined ? { issuer: r.auth.issuer } : {}),
    ...(r.auth.audience !== undefined ? { audience: r.auth.audience } : {}),
  },
  ...(r.dashboard_dir !== undefined ? { dashboardDir: r.dashboard_dir } : {}),
  allowedOrigins: r.allowed_origins.map((o) => (o === '*' ? o : o.toLowerCase())),
  trustedProxies: r.trusted_proxies,
  ...(r.metrics_token !== undefined ? { metricsToken: r.metrics_token } : {}),
  redis: { durability: r.redis_durability, waitReplicas: r.redis_wait_replicas },
}));

export type GatewayConfig = z.output<typeof configSchema>;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Frozen so a caller mutating it cannot leak settings into other configs or tests. */
export const DEFAULT_CONFIG: GatewayConfig = deepFreeze(configSchema.parse({}));

/**
 * An origin in the form browsers send it: lower-case `scheme://host[:port]` with the
 * scheme's default port left out; undefined when `value` is not an http(s) origin.
 */
export function normalizeOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return undefined;
  if (value.endsWith('/')) return undefined;
  return url.origin;
}
