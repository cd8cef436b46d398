/**
 * `tradesync serve` as a child process on a free port, for tests and benches that need
 * a gateway in a process of its own (to kill it, or to read its RSS alone).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Node arguments that run the `tradesync` command from its TypeScript sources: tsx
 * compiles them and the `@tradesync/source` condition resolves the workspace's packages
 * to their sources too, so a test never runs a stale build. (`bin/tradesync.js`, what
 * users run, loads the built dist instead.)
 */
export const TRADESYNC_CLI: readonly string[] = [
  '--conditions=@tradesync/source',
  '--import',
  'tsx',
  fileURLToPath(new URL('../../cli/src/cli.ts', import.meta.url)),
];
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export interface ServeChild {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly wsUrl: string;
  readonly exited: Promise<NodeJS.Signals | number | null>;
}

/**
 * Runs `tradesync serve --no-simulator` (embedded engine) on `dataDir`; resolves once it
 * listens. `env` adds settings (the caller's TRADESYNC_* variables are not inherited),
 * `args` more flags.
 */
export async function serveChild(dataDir: string, options: { env?: Record<string, string>; args?: readonly string[] } = {}): Promise<ServeChild> {
  const child = spawn(process.execPath, [...TRADESYNC_CLI, 'serve', '--port', '0', '--data-dir', dataDir, '--no-simulator', '--log-level', 'warn', ...(options.args ?? [])], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRADESYNC_'))), ...options.env },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-4000)));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('close', (code, signal) => resolve(signal ?? code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tradesync serve did not start within 30 s; stdout: ${out}; stderr: ${err}`));
    }, 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /TradeSync gateway on (http:\/\/[^\s]+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`tradesync serve exited (${String(how)}) before listening; stderr: ${err}`));
    });
  });
  return { child, url, wsUrl: `${url.replace(/^http/, 'ws')}/ws`, exited };
}
