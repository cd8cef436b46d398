/**
 * Gateway configuration: a YAML file, `TRADESYNC_*` environment variables and CLI
 * flags, merged with precedence flags > env > file > defaults and validated by one
 * zod schema. The file/env/flag shape is snake_case with durations in seconds; the
 * validated result is camelCase with durations in milliseconds.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError, configSchema, rawSchema, type GatewayConfig } from './config-schema.js';

export { ConfigError, DEFAULT_CONFIG, normalizeOrigin, type GatewayConfig } from './config-schema.js';

const ENV_PREFIX = 'TRADESYNC_';
/** Names the config file; not a setting itself, so it is exempt from the unknown-variable check. */
const ENV_CONFIG_FILE = 'TRADESYNC_CONFIG';

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
  /** Milliseconds between `stream_position` messages (0: off). */
  positionIntervalMs?: number | string;
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
  positionIntervalMs: { path: ['position_interval_ms'], flag: '--position-interval-ms', kind: 'number' },
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
