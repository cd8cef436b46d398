import { readFileSync } from 'node:fs';
import type { Redis, Result } from 'ioredis';

/**
 * The engine's Lua scripts, one `.lua` file each (next to this module, so they are read
 * the same from source and from any copy of the package), registered on a connection
 * with ioredis `defineCommand`: ioredis runs them by SHA and sends the source again when
 * Redis forgot it (NOSCRIPT after a restart or SCRIPT FLUSH). What each one does, and
 * its KEYS and ARGV, is written at the top of its file.
 */
const lua = (name: string): string => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** Name of the command on the connection, file, and number of keys (undefined: given first, per call). */
const SCRIPTS = {
  tradesyncAppend: { file: 'append', numberOfKeys: undefined },
  tradesyncHead: { file: 'head', numberOfKeys: 1 },
  tradesyncRead: { file: 'read', numberOfKeys: 2 },
  tradesyncTrim: { file: 'trim', numberOfKeys: 2 },
  tradesyncOffsetBefore: { file: 'offset-before', numberOfKeys: 2 },
  tradesyncSaveSnapshot: { file: 'save-snapshot', numberOfKeys: 2 },
  tradesyncRegressed: { file: 'regressed', numberOfKeys: 1 },
} as const;

const SOURCES = Object.entries(SCRIPTS).map(([name, { file, numberOfKeys }]) => ({ name, lua: lua(file), numberOfKeys }));

/** Registers every script on a connection (once, before it is used). */
export function defineScripts(client: Redis): void {
  for (const { name, lua: source, numberOfKeys } of SOURCES) {
    client.defineCommand(name, numberOfKeys === undefined ? { lua: source } : { lua: source, numberOfKeys });
  }
}

type Arg = string | number;
/** A read reply: {0} unknown stream, {1, epoch, head, first} trimmed, {2, epoch, head, first, entries}. */
type ReadReply = [number, string?, number?, number?, Array<[string, string[]]>?];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** lua/append.lua. Arguments: number of keys, keys, then ARGV. */
    tradesyncAppend(numberOfKeys: number, ...keysAndArgs: Arg[]): Result<Array<string | number>, Context>;
    tradesyncHead(meta: string, epochCandidate: string): Result<[string, number, number], Context>;
    tradesyncRead(meta: string, log: string, after: number, limit: number): Result<ReadReply, Context>;
    tradesyncTrim(meta: string, log: string, upTo: number): Result<number, Context>;
    tradesyncOffsetBefore(meta: string, log: string, ms: number): Result<number, Context>;
    tradesyncSaveSnapshot(meta: string, snapshot: string, epoch: string, offset: number, schemaVersion: number, state: string, createdAt: string): Result<number, Context>;
    tradesyncRegressed(meta: string, epochSeen: string, offsetDelivered: number, newEpoch: string): Result<[string, number, number], Context>;
  }
}
