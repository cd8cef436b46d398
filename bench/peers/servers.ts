/**
 * Starts and stops the systems under test, each in its own child process on
 * 127.0.0.1, and makes sure none outlives the bench (also on errors and Ctrl-C).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_GATEWAY_ENV, freePort, type System } from './common.js';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const PEERS: Record<Exclude<System, 'tradesync'>, string> = {
  'raw-ws': new URL('./raw-ws-server.ts', import.meta.url).pathname,
  'socket.io': new URL('./socketio-server.ts', import.meta.url).pathname,
  nats: new URL('./nats-peer.ts', import.meta.url).pathname,
  'nats-jetstream': new URL('./nats-peer.ts', import.meta.url).pathname,
};

const children = new Set<ChildProcess>();
const dataDirs = new Set<string>();

/** Kills whatever is still running; safe to call more than once. */
export function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  dataDirs.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Registers a child process so it is killed when the bench ends. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface RunningServer {
  readonly system: System;
  /** Where producers POST (HTTP). */
  readonly port: number;
  /** Where the bench's clients connect (NATS: its WebSocket listener; the others: `port`). */
  readonly clientPort: number;
  /** The process that takes the producer's requests. */
  readonly pid: number;
  /** NATS: the broker's own (TCP) port, for publishers that talk to it directly. */
  readonly brokerPort?: number;
  /** Every process of the system (NATS: the HTTP bridge and the broker), for CPU and memory. */
  readonly pids: readonly number[];
  /** Where a producer POSTs a JSON array of events. */
  readonly publishPath: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra Node flags for the server process, e.g. `--cpu-prof` (see BENCH_CPU_PROF in run.ts). */
  readonly execArgv?: readonly string[];
  /** Extra `tradesync serve` flags, e.g. `--position-interval-ms 0` (see bench/freshness.ts); TradeSync only. */
  readonly serveArgs?: readonly string[];
}

export async function startServer(system: System, options: StartOptions = {}): Promise<RunningServer> {
  const port = await freePort();
  const execArgv = options.execArgv ?? [];
  let args: string[];
  let ready: string;
  let dataDir: string | undefined;
  if (system === 'tradesync') {
    dataDir = mkdtempSync(join(tmpdir(), 'tradesync-bench-'));
    dataDirs.add(dataDir);
    args = [...execArgv, ...TRADESYNC_CLI, 'serve', '--no-simulator', '--port', String(port), '--data-dir', dataDir, '--durability', 'normal', '--log-level', 'warn', ...(options.serveArgs ?? [])];
    ready = 'TradeSync gateway on';
  } else {
    args = [...execArgv, '--conditions=@tradesync/source', '--import', 'tsx', PEERS[system], String(port)];
    ready = 'LISTENING';
  }
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...BENCH_GATEWAY_ENV } }));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      // The whole ready line: NATS puts its ports on it.
      const at = out.indexOf(ready);
      if (at >= 0 && out.indexOf('\n', at) >= 0) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${system} server exited early (${code}): ${out}`)));
  });
  // NATS: `LISTENING PORT ws=WS_PORT nats=NATS_PORT pid=BROKER_PID` (the broker is the bridge's child).
  const wsPort = /ws=(\d+)/.exec(out)?.[1];
  const brokerPid = /pid=(\d+)/.exec(out)?.[1];
  const brokerPort = /nats=(\d+)/.exec(out)?.[1];
  return {
    system,
    port,
    clientPort: wsPort ? Number(wsPort) : port,
    ...(brokerPort ? { brokerPort: Number(brokerPort) } : {}),
    pid: child.pid!,
    pids: brokerPid ? [child.pid!, Number(brokerPid)] : [child.pid!],
    publishPath: system === 'tradesync' ? '/api/v1/events' : '/events',
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (dataDir) {
        rmSync(dataDir, { recursive: true, force: true });
        dataDirs.delete(dataDir);
      }
    },
  };
}
