import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';

/**
 * A private redis-server for one test file: a free port on loopback, a temporary
 * directory, killed on dispose. Never the default port 6379, so a developer's own Redis
 * is never touched. By default it runs as production should (`appendonly yes`,
 * `appendfsync always`, no RDB snapshots), so the engine's default durability check passes.
 */
export interface TestRedis extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** The server's data directory (its append-only file lives here). */
  readonly dir: string;
  /** The redis-server process while it runs (for its CPU time in benchmarks). */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, waits for exit). */
  stop(): Promise<void>;
  /** Kills the server at once (SIGKILL). */
  kill(): Promise<void>;
  /**
   * Starts it again on the same port (after stop or kill). By default its append-only
   * file is discarded first, so it comes back as of its last explicit `SAVE` (empty when
   * there was none), as a Redis without persistence would. `keepData: true` keeps the
   * data dir: it loads its append-only file, i.e. what it acknowledged before it died.
   */
  restart(options?: { keepData?: boolean }): Promise<void>;
  /** Runs one command on a fresh connection (e.g. `FLUSHALL`) and returns the raw reply line. */
  command(...args: string[]): Promise<string>;
}

/** Finds redis-server, installing it with apt-get when running as root; throws if it cannot. */
export function findRedisServer(): string {
  const found = lookup();
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'ignore', env, timeout: 300_000 });
    } catch {
      try {
        execFileSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 300_000 });
        execFileSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'ignore', env, timeout: 300_000 });
      } catch {
        // Reported below with the one message that matters.
      }
    }
    const installed = lookup();
    if (installed) return installed;
  }
  throw new Error(
    'redis-server was not found on PATH or at /usr/bin/redis-server' +
      (isRoot ? ' and `apt-get install -y redis-server` did not provide it' : ' (install it, e.g. `apt-get install redis-server`)') +
      '. The Redis engine tests need a real redis-server; they do not skip.',
  );
}

function lookup(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined;
}

/** A port nobody listens on right now (never 6379). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (port !== 6379 && port !== 0) return port;
  }
}

export interface TestRedisOptions {
  /** `--appendonly`. @default true */
  readonly appendonly?: boolean;
  /** `--appendfsync` (with appendonly). @default 'always' */
  readonly appendfsync?: 'always' | 'everysec' | 'no';
  /** More `redis-server` arguments, e.g. `['--replicaof', '127.0.0.1', '1234']`. */
  readonly args?: readonly string[];
}

/** Starts a redis-server and waits until it answers PING. */
export async function startRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const binary = findRedisServer();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tradesync-redis-'));
  const appendonly = options.appendonly ?? true;
  const appendfsync = options.appendfsync ?? 'always';
  let child: ChildProcess | undefined;
  let log = '';

  const launch = async (aof = appendonly) => {
    log = '';
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--appendonly', aof ? 'yes' : 'no', '--appendfsync', appendfsync];
    const proc = spawn(binary, [...args, ...(options.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
    proc.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
    child = proc;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited at start:\n${log}`);
      try {
        if ((await send(port, ['PING'])).startsWith('+PONG')) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${port} within 10 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const end = async (signal: NodeJS.Signals) => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
  };

  await launch();
  // A test that forgets to dispose must not leave a server behind when vitest exits.
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    async restart(restartOptions = {}) {
      await end('SIGTERM');
      if (restartOptions.keepData || !appendonly) return launch();
      // Forget the append-only file (Redis 7 keeps it under appendonlydir/, older ones in appendonly.aof).
      for (const name of readdirSync(dir)) if (name.startsWith('appendonly')) rmSync(join(dir, name), { recursive: true, force: true });
      if (!existsSync(join(dir, 'dump.rdb'))) return launch();
      // With the AOF on, Redis would ignore the RDB: load it first, then turn the AOF on.
      await launch(false);
      await send(port, ['CONFIG', 'SET', 'appendonly', 'yes']);
    },
    command: (...args: string[]) => send(port, args),
    async [Symbol.asyncDispose]() {
      await end('SIGKILL');
      process.off('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Registers the hooks most Redis test files share: one private redis-server started
 * before the file's tests and disposed after them, flushed (`FLUSHALL`) before each test
 * unless `flushBeforeEach` is false. Call it at the top level of the file, before hooks
 * that need the server. The returned handle forwards to that server; use it only inside
 * hooks and tests.
 */
export function useTestRedis(options: { flushBeforeEach?: boolean } & TestRedisOptions = {}): TestRedis {
  let current: TestRedis | undefined;
  const server = (): TestRedis => {
    if (!current) throw new Error('the test redis-server is not running: use it inside hooks and tests only');
    return current;
  };
  beforeAll(async () => {
    current = await startRedis(options);
  });
  afterAll(async () => {
    await current?.[Symbol.asyncDispose]();
    current = undefined;
  });
  if (options.flushBeforeEach ?? true) {
    beforeEach(async () => {
      await server().command('FLUSHALL');
    });
  }
  return {
    get url() {
      return server().url;
    },
    get port() {
      return server().port;
    },
    get pid() {
      return server().pid;
    },
    get dir() {
      return server().dir;
    },
    stop: () => server().stop(),
    kill: () => server().kill(),
    restart: (restartOptions?: { keepData?: boolean }) => server().restart(restartOptions),
    command: (...args: string[]) => server().command(...args),
    async [Symbol.asyncDispose]() {
      await current?.[Symbol.asyncDispose]();
      current = undefined;
    },
  };
}

/** One RESP command on its own connection; resolves with the first reply line. */
function send(port: number, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis command ${args[0]} timed out`));
    }, 2000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply.slice(0, reply.indexOf('\r\n')));
      }
    });
    socket.connect(port, '127.0.0.1', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
  });
}
