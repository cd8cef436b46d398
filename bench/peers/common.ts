/**
 * What the bench's processes share: the clock, the IPC messages between the
 * orchestrator (`bench/run.ts`) and its client workers (`worker.ts`), and how a
 * latency histogram is built and shipped between processes.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as hdr from 'hdr-histogram-js';

/** The systems under test. */
export type System = 'tradesync' | 'raw-ws' | 'socket.io' | 'nats' | 'nats-jetstream';
/** `nats`: core subscriptions (live only); `nats-jetstream`: the same broker, clients on JetStream ordered consumers that resume from their sequence. */
export const SYSTEMS: readonly System[] = ['tradesync', 'raw-ws', 'socket.io', 'nats', 'nats-jetstream'];

/**
 * Wall-clock milliseconds with sub-millisecond precision. Every process on this machine
 * reads the same clock, so `now() - sched` in a receiver is the latency from the
 * event's scheduled publish time (no coordinated omission).
 */
export const now = (): number => performance.timeOrigin + performance.now();

/** Latencies are recorded in microseconds, up to two minutes, 3 significant digits. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export const encodeHistogram = (h: hdr.Histogram): string => hdr.encodeIntoCompressedBase64(h);
export const decodeHistogram = (s: string): hdr.Histogram => hdr.decodeFromCompressedBase64(s, 32, false);

/** The NATS subject a stream's events go out on (`market:BENCH` → `bench.market.BENCH`). */
export const natsSubject = (stream: string): string => `bench.${stream.replaceAll(':', '.')}`;

/** One client a worker opens: the stream (TradeSync) or room (peers) it listens to. */
export interface ClientSpec {
  readonly stream: string;
}

/** Orchestrator → worker. */
export type WorkerCommand =
  | { readonly op: 'connect'; readonly system: System; readonly port: number; readonly clients: readonly ClientSpec[] }
  /** Record latencies of events scheduled in [start, end). */
  | { readonly op: 'window'; readonly start: number; readonly end: number }
  | { readonly op: 'collect' }
  /** Cut every socket at once and reconnect all with resume; answer when all are synced. */
  | { readonly op: 'storm' }
  | { readonly op: 'close' };

/** Worker → orchestrator. */
export type WorkerReply =
  | { readonly op: 'connected'; readonly count: number; readonly failed: number }
  | {
      readonly op: 'collected';
      readonly histogram: string;
      /** Events in the window received, summed over clients. */
      readonly received: number;
      /** Protocol checks (TradeSync): sequence_number not +1, offset gaps, duplicates. */
      readonly seqErrors: number;
      readonly gaps: number;
      readonly dups: number;
      /** Sockets the server closed during the run (e.g. slow consumer). */
      readonly closedByServer: number;
    }
  | { readonly op: 'stormed'; readonly cutAt: number; readonly lastSyncedAt: number; readonly synced: number; readonly recovered: number; readonly failed: number }
  | { readonly op: 'closed' }
  | { readonly op: 'error'; readonly message: string };

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const CLK_TCK = 100;

/** CPU time (user + system, ms) of a process, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLK_TCK;
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
/** CPU time (ms) of several processes together (a system of more than one). */
export const cpuMsOf = (pids: readonly number[]): number => pids.reduce((n, pid) => n + cpuMs(pid), 0);

/** Resident memory of several processes together. */
export const rssBytesOf = (pids: readonly number[]): number => pids.reduce((n, pid) => n + rssBytes(pid), 0);

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Settings for a gateway under a benchmark: every load-generating client comes from
 * 127.0.0.1, which `limits.max_connections_per_ip` (256 by default) would otherwise cap.
 */
export const BENCH_GATEWAY_ENV: Readonly<Record<string, string>> = {
  TRADESYNC_LIMITS__MAX_CONNECTIONS_PER_IP: '100000',
  TRADESYNC_LIMITS__MAX_CONNECTIONS: '100000',
};
