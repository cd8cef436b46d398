import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '@tradesync/testing';
import { TcpProxy } from '@tradesync/testing/tcp-proxy';

/**
 * Runs the Python SDK's pytest suite against a real gateway. The suite's gateway tests
 * read where to connect from the environment:
 * - TRADESYNC_TEST_URL: the gateway's WebSocket endpoint;
 * - TRADESYNC_TEST_PROXY_URL: the same through a TCP proxy that the tests can break;
 * - TRADESYNC_TEST_CONTROL: an HTTP endpoint for what only this side can do:
 *   POST /cut, /blackhole, /refuse, /heal (the proxy, see TcpProxy) and /restart (stop
 *   the gateway and start a new one on the same port and data).
 *
 * The gateway sends `stream_position` every POSITION_INTERVAL_MS, so that the tests see
 * positions (and the SDK's freshness rules act) within a fraction of a second.
 */

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SDK = fileURLToPath(new URL('../', import.meta.url));
const HEARTBEAT_MS = 1000;
const POSITION_INTERVAL_MS = 200;
const GATEWAY = { heartbeat: { pingIntervalMs: HEARTBEAT_MS }, positionIntervalMs: POSITION_INTERVAL_MS };

/** Exits 0 when the interpreter is new enough for the SDK and has what its tests import; else says why. */
const PYTHON_CHECK = [
  'import sys',
  'if sys.version_info < (3, 11): sys.exit(f"Python {sys.version.split()[0]}: the SDK needs 3.11 or newer")',
  'import websockets, pytest',
].join('\n');

/**
 * The interpreter to run the suite with: Debian's /usr/bin/python3 first (where
 * scripts/ensure-test-deps.mjs installs websockets and pytest), else `python3` on PATH.
 * Fails, saying what each candidate lacks, when neither will do.
 */
function findPython(): string {
  const problems: string[] = [];
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const check = spawnSync(candidate, ['-c', PYTHON_CHECK], { encoding: 'utf8' });
    if (check.status === 0) return candidate;
    const said = (check.error?.message ?? check.stderr).trim().split('\n').at(-1);
    problems.push(`${candidate}: ${said || `exit ${check.status}`}`);
  }
  throw new Error(`no Python 3.11+ with the websockets and pytest modules (${problems.join('; ')}): run \`node scripts/ensure-test-deps.mjs\``);
}

/** A gateway, a proxy in front of it, and the control endpoint the Python tests drive. */
class Harness implements AsyncDisposable {
  private constructor(
    private gateway: TestGateway,
    readonly proxy: TcpProxy,
    private readonly control: Server,
  ) {}

  static async start(): Promise<Harness> {
    const gateway = await startGateway(GATEWAY, { keepData: true });
    const proxy = await TcpProxy.start(gateway.gateway.port);
    const control = createServer();
    const harness = new Harness(gateway, proxy, control);
    control.on('request', (req, res) => {
      harness.#act(req.method === 'POST' ? (req.url ?? '') : '').then(
        (done) => res.writeHead(done ? 204 : 404).end(),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    });
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    return harness;
  }

  get env(): Record<string, string> {
    const { port } = this.control.address() as AddressInfo;
    return {
      TRADESYNC_TEST_URL: this.gateway.wsUrl,
      TRADESYNC_TEST_PROXY_URL: `ws://127.0.0.1:${this.proxy.port}/ws`,
      TRADESYNC_TEST_CONTROL: `http://127.0.0.1:${port}`,
    };
  }

  async #act(action: string): Promise<boolean> {
    switch (action) {
      case '/cut':
        this.proxy.cut();
        return true;
      case '/blackhole':
        this.proxy.blackhole();
        return true;
      case '/refuse':
        this.proxy.refuse();
        return true;
      case '/heal':
        this.proxy.heal();
        return true;
      case '/restart': {
        const { port } = this.gateway.gateway;
        await this.gateway.stop();
        this.gateway = await startGateway({ ...GATEWAY, port }, { dataDir: this.gateway.dataDir, keepData: true });
        return true;
      }
      default:
        return false;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await new Promise<void>((resolve) => this.control.close(() => resolve()));
    await this.proxy.close();
    await this.gateway[Symbol.asyncDispose]();
  }
}

/** Runs a command without blocking the event loop (the gateway runs in this process), with its output merged. */
function run(command: string, args: readonly string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, env: { ...process.env, ...env } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('the Python SDK', () => {
  it('passes its pytest suite, the gateway tests included, against a real gateway', async () => {
    const python = findPython();
    await using harness = await Harness.start();
    const { code, output } = await run(
      python,
      ['-m', 'pytest', 'clients/python/tests', '-q', '-rs'],
      { ...harness.env, PYTHONPATH: SDK, PYTHONDONTWRITEBYTECODE: '1' },
      170_000,
    );
    expect(code, `pytest failed:\n${output}`).toBe(0);
    // Every test ran: none skipped for want of a gateway.
    expect(output, output).not.toMatch(/skipped/);
  }, 180_000);
});
