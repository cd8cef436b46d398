import { Redis, type RedisOptions } from 'ioredis';
import { EngineUnavailableError } from '../engine.js';
import type { ResolvedOptions } from './options.js';
import { defineScripts } from './scripts.js';

/**
 * The engine's two connections to Redis and how their failures are told apart. The
 * command connection carries every read, append and script; the subscriber connection
 * only the fan-out channel (a subscribed connection can do nothing else).
 */

/** Redis replies meaning "cannot serve right now" rather than "bad request". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|NOREPLICAS|CLUSTERDOWN|TRYAGAIN|MISCONF)\b/;

export function createConnections(options: ResolvedOptions): { cmd: Redis; sub: Redis } {
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: options.commandTimeoutMs,
    // Reconnect for ever, quickly: a node must come back by itself when Redis does.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 1000),
  };
  // Commands fail at once while disconnected (no offline queue, no retry of a command
  // in flight): the caller answers 503 instead of hanging, and an append is never
  // silently replayed after a reconnect.
  // socketTimeout: a connection that stays silent while a command waits for its reply
  // is dropped and reconnected. Without it a half-open connection (a network
  // partition, a suspended host) keeps failing every command until TCP gives up, and
  // replies of commands that timed out could be matched to later ones.
  const socketTimeout = options.commandTimeoutMs;
  const cmd = new Redis(options.url, {
    ...common,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    socketTimeout,
  });
  defineScripts(cmd);
  const sub = new Redis(options.url, { ...common, autoResubscribe: false, maxRetriesPerRequest: null, socketTimeout });
  return { cmd, sub };
}

/**
 * Connection-level failures (refused, reset, timed out, no offline queue) and replies
 * meaning "not now" become EngineUnavailableError (HTTP 503); any other Redis error
 * reply is a bug and is rethrown as it is.
 */
export function unavailable(error: unknown, message?: string): Error {
  if (error instanceof EngineUnavailableError) return error;
  const isReply = error instanceof Error && error.name === 'ReplyError';
  if (isReply && !UNAVAILABLE_REPLY.test(error.message)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new EngineUnavailableError(message ? `${message}: ${detail}` : `redis unavailable: ${detail}`, { cause: error });
}

/** Runs a command whose caller waits on it: its failure becomes `unavailable(error)`. */
export async function guarded<T>(cmd: Redis, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    // A command that timed out leaves its reply (if any) on the connection: start a new one.
    if (error instanceof Error && error.message === 'Command timed out' && cmd.status === 'ready') cmd.disconnect(true);
    throw unavailable(error);
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function quit(client: Redis | undefined): Promise<void> {
  if (!client) return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await withTimeout(client.quit(), 1000, 'QUIT timed out');
  } catch {
    client.disconnect();
  }
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an invalid URL';
  }
}
