/**
 * Gateway configuration: a YAML file, `TRADESYNC_*` environment variables and CLI
 * flags, merged with precedence flags > env > file > defaults and validated by one
 * zod schema. The file/env/flag shape is snake_case with durations in seconds; the
 * validated result is camelCase with durations in milliseconds.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import proxyAddr from 'proxy-addr';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { isValidAccount } from '@tradesync/protocol';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const ENV_PREFIX = 'TRADESYNC_';
/** Names the config file; not a setting itself, so it is exempt from the unknown-variable check. */
const ENV_CONFIG_FILE = 'TRADESYNC_CONFIG';

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
const rawSchema = z.strictObject({
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

const configSchema = checkedSchema.transform((r) => ({
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

/** CLI flags, already parsed. Numbers may arrive as strings from a plain argv parser. */
export interface ConfigFlags {
  host?: string;
  port?: number | string;
  dataDir?: string;
  engine?: string;
  redisUrl?: string;
  simulator?: boolean;
  insecure?: boolean;
  logLevel?: string;
  authSecret?: string;
  /** Seconds. */
  pingInterval?: number | string;
  durability?: string;
  /** Comma-separated, or a list. */
  allowedOrigins?: string | readonly string[];
}

type LeafKind = 'string' | 'number' | 'boolean' | 'list';
interface Leaf {
  path: readonly string[];
  kind: LeafKind;
}

/** Lists the schema's leaves so env names are derived from the schema, not a second list. */
function collectLeaves(schema: z.ZodType, path: readonly string[], out: Leaf[]): Leaf[] {
  let s: z.ZodType = schema;
  // Sections wrap their object in prefault/pipe (superRefine) layers; leaves in default/optional.
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
    else break;
  }
  if (s instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(s.shape) as Array<[string, z.ZodType]>) {
      collectLeaves(child, [...path, key], out);
    }
    return out;
  }
  const kind: LeafKind = s instanceof z.ZodBoolean ? 'boolean' : s instanceof z.ZodNumber ? 'number' : s instanceof z.ZodArray ? 'list' : 'string';
  out.push({ path, kind });
  return out;
}

const LEAVES = collectLeaves(rawSchema, [], []);
const envName = (path: readonly string[]): string => ENV_PREFIX + path.map((p) => p.toUpperCase()).join('__');
const ENV_LEAVES = new Map(LEAVES.map((l) => [envName(l.path), l]));

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Where each merged value came from, keyed by dotted path, for error messages. */
type Sources = Map<string, string>;

/** Deep-merges `layer` over `target`, recording the source of every key it writes. */
function mergeLayer(target: Plain, layer: Plain, source: string, sources: Sources, prefix: readonly string[] = []): void {
  for (const [key, value] of Object.entries(layer)) {
    const path = [...prefix, key];
    const existing = target[key];
    if (isPlain(value) && isPlain(existing)) {
      mergeLayer(existing, value, source, sources, path);
      continue;
    }
    target[key] = isPlain(value) ? structuredClone(value) : value;
    sources.set(path.join('.'), source);
    if (isPlain(value)) recordAll(value, source, sources, path);
  }
}

function recordAll(obj: Plain, source: string, sources: Sources, prefix: readonly string[]): void {
  for (const [key, value] of Object.entries(obj)) {
    const path = [...prefix, key];
    sources.set(path.join('.'), source);
    if (isPlain(value)) recordAll(value, source, sources, path);
  }
}

function setPath(obj: Plain, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (isPlain(next)) cur = next;
    else {
      const created: Plain = {};
      cur[key] = created;
      cur = created;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) cur[last] = value;
}

function readFileLayer(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const detail = err instanceof YAMLParseError ? err.message : String(err);
    throw new ConfigError(`config file ${file} is not valid YAML: ${detail}`);
  }
  // An empty file parses to null: treat it as "no settings" rather than an error.
  if (doc === null || doc === undefined) return {};
  if (!isPlain(doc)) throw new ConfigError(`config file ${file} must contain a mapping of settings at the top level`);
  return doc;
}

function coerce(raw: string, kind: LeafKind, source: string, key: string): string | number | boolean | string[] {
  const value = raw.trim();
  if (kind === 'string') return raw;
  // Lists are comma-separated in the environment and on the command line.
  if (kind === 'list') return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (kind === 'boolean') {
    const lower = value.toLowerCase();
    if (lower === 'true' || lower === '1') return true;
    if (lower === 'false' || lower === '0') return false;
    throw new ConfigError(`invalid ${key} from ${source}: expected true, false, 1 or 0, got ${JSON.stringify(raw)}`);
  }
  const n = Number(value);
  if (value === '' || !Number.isFinite(n)) {
    throw new ConfigError(`invalid ${key} from ${source}: expected a number, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function envLayer(env: NodeJS.ProcessEnv): Plain {
  const layer: Plain = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === ENV_CONFIG_FILE) continue;
    const leaf = ENV_LEAVES.get(name);
    if (leaf === undefined) {
      // Rejecting unknown names catches typos that would otherwise be silently ignored.
      throw new ConfigError(`unknown environment variable ${name}: no such setting (check the spelling; nested keys use "__", e.g. TRADESYNC_AUTH__SECRET)`);
    }
    // An empty variable means "unset", matching how shells and container specs blank values.
    if (raw === undefined || raw === '') continue;
    setPath(layer, leaf.path, coerce(raw, leaf.kind, `environment variable ${name}`, leaf.path.join('.')));
  }
  return layer;
}

const FLAG_PATHS: Record<keyof ConfigFlags, { path: readonly string[]; flag: string; kind: LeafKind }> = {
  host: { path: ['host'], flag: '--host', kind: 'string' },
  port: { path: ['port'], flag: '--port', kind: 'number' },
  dataDir: { path: ['data_dir'], flag: '--data-dir', kind: 'string' },
  engine: { path: ['engine'], flag: '--engine', kind: 'string' },
  redisUrl: { path: ['redis_url'], flag: '--redis-url', kind: 'string' },
  simulator: { path: ['simulator'], flag: '--simulator', kind: 'boolean' },
  insecure: { path: ['insecure'], flag: '--insecure', kind: 'boolean' },
  logLevel: { path: ['log_level'], flag: '--log-level', kind: 'string' },
  authSecret: { path: ['auth', 'secret'], flag: '--auth-secret', kind: 'string' },
  pingInterval: { path: ['heartbeat', 'ping_interval'], flag: '--ping-interval', kind: 'number' },
  durability: { path: ['durability'], flag: '--durability', kind: 'string' },
  allowedOrigins: { path: ['allowed_origins'], flag: '--allowed-origins', kind: 'list' },
};

function flagLayer(flags: ConfigFlags, sources: Map<string, string>): Plain {
  const layer: Plain = {};
  for (const [name, value] of Object.entries(flags) as [keyof ConfigFlags, unknown][]) {
    if (value === undefined) continue;
    const spec = FLAG_PATHS[name];
    // Guards callers that bypass the type (e.g. spreading a whole argv object).
    if (spec === undefined) throw new ConfigError(`unknown flag ${String(name)}`);
    const key = spec.path.join('.');
    const coerced = typeof value === 'string' && spec.kind !== 'string' ? coerce(value, spec.kind, `flag ${spec.flag}`, key) : value;
    setPath(layer, spec.path, coerced);
    sources.set(key, `flag ${spec.flag}`);
  }
  return layer;
}

function describeIssue(issue: z.core.$ZodIssue, sources: Sources): string {
  let path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    path = [...path, key];
    message = `unknown key "${[...path].join('.')}"${issue.keys.length > 1 ? ` (also: ${issue.keys.slice(1).join(', ')})` : ''}`;
  }
  const dotted = path.join('.');
  // Walk up the path: an error on a section may have been set as a whole by one source.
  let source: string | undefined;
  for (let i = path.length; i > 0 && source === undefined; i--) source = sources.get(path.slice(0, i).join('.'));
  const where = source ?? 'defaults';
  return issue.code === 'unrecognized_keys' ? `${message} in ${where}` : `invalid ${dotted || 'configuration'} from ${where}: ${message}`;
}

/** Loads, merges and validates configuration. Throws ConfigError with the source and key named. */
export function loadConfig(opts: { configFile?: string; env?: NodeJS.ProcessEnv; flags?: ConfigFlags } = {}): GatewayConfig {
  const env = opts.env ?? {};
  const merged: Plain = {};
  const sources: Sources = new Map();
  const configFile = opts.configFile ?? (env[ENV_CONFIG_FILE] || undefined);
  if (configFile !== undefined) mergeLayer(merged, readFileLayer(configFile), `config file ${configFile}`, sources);
  mergeLayer(merged, envLayer(env), 'environment', sources);
  // Env sources are recorded per variable for precise messages.
  for (const [name, leaf] of ENV_LEAVES) {
    if (env[name] !== undefined && env[name] !== '') sources.set(leaf.path.join('.'), `environment variable ${name}`);
  }
  const flagSources = new Map<string, string>();
  mergeLayer(merged, flagLayer(opts.flags ?? {}, flagSources), 'flags', sources);
  for (const [k, v] of flagSources) sources.set(k, v);

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((i) => describeIssue(i, sources));
    throw new ConfigError(lines.length === 1 ? (lines[0] ?? '') : `invalid configuration:\n  - ${lines.join('\n  - ')}`);
  }
  return result.data;
}

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

/** True for 127.0.0.0/8, ::1 (also bracketed or IPv4-mapped) and `localhost`. */
export function isLoopback(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    const mapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    if (mapped?.[1] !== undefined) return mapped[1].startsWith('127.');
    // Expand "::" so every spelling of ::1 (e.g. 0:0:0:0:0:0:0:1) is recognised.
    const [head = '', tail] = h.split('::');
    const headParts = head === '' ? [] : head.split(':');
    const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
    const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
    return parts.length === 8 && parts.slice(0, 7).every((p) => Number.parseInt(p, 16) === 0) && Number.parseInt(parts[7] ?? '', 16) === 1;
  }
  return false;
}

/**
 * Refuses to expose an unauthenticated gateway beyond this machine: anyone who can
 * reach the port could read every account and send orders.
 */
export function assertSafeBind(config: GatewayConfig): void {
  if (isLoopback(config.host) || config.auth.enabled || config.insecure) return;
  throw new ConfigError(
    `refusing to listen on ${config.host} without authentication: anyone who can reach it could read all accounts and trade. ` +
      'Set an auth secret (--auth-secret, TRADESYNC_AUTH__SECRET or auth.secret in the config file) or a JWKS URL (auth.jwks_url), ' +
      'or pass --insecure to accept the risk.',
  );
}
