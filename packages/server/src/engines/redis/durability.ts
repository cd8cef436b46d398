import type { Redis } from 'ioredis';

/**
 * What the Redis engine requires of Redis before it acknowledges an append
 * (`redis_durability`):
 * - `fsync` (default): the append-only file is on and `appendfsync always`: Redis
 *   writes and fsyncs before it replies, so nothing acknowledged is lost, whether the
 *   Redis process is killed or its host crashes. The only mode that keeps the promise
 *   the embedded engine makes.
 * - `aof`: the append-only file is on (`appendonly yes`), any `appendfsync`. With
 *   `everysec` Redis may reply before it has even written the AOF while a background
 *   fsync is slow (it postpones the write up to 2 s), so a killed Redis process can
 *   lose up to ~2 s of acknowledged events (seen in the fault tests under disk load),
 *   and a host crash ~1-2 s. The engine then gives those streams a new epoch, so no
 *   client is left on a history that was rewritten.
 * - `none`: nothing is checked; a Redis restart without persistence loses acknowledged
 *   events (the streams then get a new epoch).
 */
export type RedisDurability = 'aof' | 'fsync' | 'none';

type DurabilityCode =
  /** Everything the mode needs was verified. */
  | 'ok'
  /** Not verified since the (re)connect yet. */
  | 'unchecked'
  /** `aof_enabled:0`. */
  | 'aof-off'
  /** The AOF is on but Redis could not write it (disk full, read-only…). */
  | 'aof-write-error'
  /** `fsync` mode and `appendfsync` is not `always`. */
  | 'fsync-not-always'
  /** `fsync` mode and `CONFIG GET appendfsync` failed (CONFIG renamed, disabled or denied). */
  | 'config-unavailable'
  /** `INFO persistence` failed with an error reply (denied by an ACL, renamed). */
  | 'info-unavailable';

export interface DurabilityStatus {
  readonly ok: boolean;
  readonly code: DurabilityCode;
  /** Why appends are refused, naming the Redis setting to change. */
  readonly detail?: string;
}

export const DURABILITY_OK: DurabilityStatus = { ok: true, code: 'ok' };
export const DURABILITY_UNCHECKED: DurabilityStatus = {
  ok: false,
  code: 'unchecked',
  detail: 'redis persistence not verified since the connection was (re)established; appends wait for the check',
};

/** `key:value` lines of an INFO section. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * Decides from `INFO persistence` (and, in `fsync` mode, `appendfsync`) whether Redis
 * keeps what it acknowledges, as the mode requires. Pure: the engine does the I/O.
 */
export function judgeDurability(mode: RedisDurability, info: Map<string, string>, appendfsync?: { value?: string; error?: string }): DurabilityStatus {
  if (mode === 'none') return DURABILITY_OK;
  if (info.get('aof_enabled') !== '1') {
    return {
      ok: false,
      code: 'aof-off',
      detail:
        'redis persistence is off (INFO persistence: aof_enabled:0): acknowledged events would be lost on a Redis restart, so appends are refused. ' +
        'Set `appendonly yes` in redis.conf (or CONFIG SET appendonly yes), or accept the risk with redis_durability: none',
    };
  }
  if (info.get('aof_last_write_status') === 'err') {
    return {
      ok: false,
      code: 'aof-write-error',
      detail: 'redis cannot write its append-only file (INFO persistence: aof_last_write_status:err); appends are refused until it can (check the disk of the Redis host)',
    };
  }
  if (mode === 'fsync') {
    if (appendfsync?.value === undefined) {
      return {
        ok: false,
        code: 'config-unavailable',
        detail:
          `redis_durability is fsync but \`CONFIG GET appendfsync\` failed (${appendfsync?.error ?? 'no reply'}): the setting cannot be verified, so appends are refused. ` +
          'Allow CONFIG GET for this user, or use redis_durability: aof if your provider guarantees `appendfsync always`',
      };
    }
    if (appendfsync.value !== 'always') {
      return {
        ok: false,
        code: 'fsync-not-always',
        detail:
          `redis_durability is fsync but Redis has \`appendfsync ${appendfsync.value}\`: acknowledged events could be lost on a Redis host crash, so appends are refused. ` +
          'Set `appendfsync always` in redis.conf (or CONFIG SET appendfsync always), or accept losing up to ~2 s of acknowledged events with redis_durability: aof',
      };
    }
  }
  return DURABILITY_OK;
}

/**
 * Reads what `judgeDurability` needs from Redis. Connection failures and timeouts are
 * thrown (the caller keeps what it knew and retries); error *replies* (a command denied
 * or renamed) are part of the verdict.
 */
export async function checkDurability(client: Redis, mode: RedisDurability): Promise<DurabilityStatus> {
  if (mode === 'none') return DURABILITY_OK;
  let info: string;
  try {
    info = await client.info('persistence');
  } catch (error) {
    if (!isReplyError(error)) throw error;
    return {
      ok: false,
      code: 'info-unavailable',
      detail: `redis_durability is ${mode} but \`INFO persistence\` failed (${error.message}): persistence cannot be verified, so appends are refused. Allow INFO for this user, or use redis_durability: none`,
    };
  }
  const fields = parseInfo(info);
  if (mode !== 'fsync' || fields.get('aof_enabled') !== '1') return judgeDurability(mode, fields);
  let appendfsync: { value?: string; error?: string };
  try {
    const reply = (await client.config('GET', 'appendfsync')) as unknown;
    const list = Array.isArray(reply) ? (reply as unknown[]) : [];
    const value = list[1];
    appendfsync = typeof value === 'string' ? { value } : { error: `unexpected reply ${JSON.stringify(reply)}` };
  } catch (error) {
    if (!isReplyError(error)) throw error;
    appendfsync = { error: error.message };
  }
  return judgeDurability(mode, fields, appendfsync);
}

function isReplyError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'ReplyError';
}
