import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { TradeSyncClient, type ClientStatus, type Logger, type WebSocketConstructor, type WebSocketLike } from '../src/index.js';
import { metric, order, publish, startGateway, tick } from '@tradesync/testing';

/**
 * docs/CLIENT.md shows code people copy. Each block marked `<!-- tested: name -->` is
 * taken out of the file as it is, type-checked with the repository's strict options,
 * and the Node script and the metrics reporter are run against real gateways: a guide
 * whose snippet no longer compiles or no longer does what it says fails here.
 */

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const GUIDE = readFileSync(join(REPO, 'docs/CLIENT.md'), 'utf8');

function snippet(name: string): string {
  const match = new RegExp(`<!-- tested: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(GUIDE);
  if (!match) throw new Error(`docs/CLIENT.md has no block marked <!-- tested: ${name} -->`);
  return `${match[1]!}\n`;
}

const FILES = { 'node-quickstart': 'quickstart.ts', 'react-hook': 'use-stream.tsx', 'vue-app': 'vue-app.ts', 'client-metrics-reporter': 'client-metrics.ts' } as const;

let dir: string;

beforeAll(() => {
  // Outside the repository (its typecheck and lint never see it), resolving packages through the repository's node_modules.
  dir = mkdtempSync(join(tmpdir(), 'tradesync-guide-'));
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  for (const [name, file] of Object.entries(FILES)) writeFileSync(join(dir, file), snippet(name));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/CLIENT.md', () => {
  it('has snippets that type-check against the real SDK with the repository’s strict options', () => {
    const { config } = ts.readConfigFile(join(REPO, 'tsconfig.json'), (path) => ts.sys.readFile(path)) as { config: { compilerOptions: unknown } };
    const { options } = ts.parseJsonConfigFileContent({ compilerOptions: config.compilerOptions, files: [] }, ts.sys, REPO);
    const roots = readdirSync(dir).filter((f) => /\.tsx?$/.test(f)).map((f) => join(dir, f));
    const program = ts.createProgram(roots, { ...options, noEmit: true });
    // Only the snippets are judged: the packages they import are checked by `npm run typecheck`.
    const ours = ts.getPreEmitDiagnostics(program).filter((d) => !d.file || d.file.fileName.startsWith(dir));
    const text = ours.map((d) => `${d.file ? `${d.file.fileName.slice(dir.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(text).toEqual([]);
    expect(roots.map((r) => r.slice(dir.length + 1)).sort()).toEqual(expect.arrayContaining(Object.values(FILES).sort()));
  }, 120_000);

  it('has a Node script that shows the live state of the stream, its conflated ticks, then disconnects and exits', async () => {
    await using gw = await startGateway({ positionIntervalMs: 100 });
    await publish(gw.url, [order('demo'), tick('BTC-USD', '42000.5')]);

    const child = spawn(process.execPath, ['--conditions=@tradesync/source', '--import', 'tsx', join(dir, FILES['node-quickstart'])], {
      cwd: REPO,
      env: { ...process.env, TRADESYNC_URL: gw.wsUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      const lines = () => out.split('\n');
      const shows = (line: string) => vi.waitFor(() => expect(lines(), `stderr: ${err}`).toContain(line), { timeout: 20_000, interval: 20 });
      await shows('status: Live');
      await shows('orders:demo synced at 1 (snapshot)');
      await shows('open orders: 1');
      await shows('BTC-USD 42000.5');

      await publish(gw.url, [order('demo'), tick('BTC-USD', '42001.0')]);
      await shows('order event order:updated at 2');
      await shows('open orders: 2');
      await shows('BTC-USD 42001.0');

      child.kill('SIGINT');
      // disconnect() leaves no socket and no timer: the process ends by itself.
      expect(await exited).toBe(0);
      expect(out).toMatch(/^orders:demo verified at offset (\d+|none yet); checksums matched \d+ times$/m);
      expect(err).toBe('');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('has a metrics reporter that counts a real reconnect, the live events held while the stream resynced, and toasts', async () => {
    const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
    const first = await startGateway({}, { keepData: true });
    const port = first.gateway.port;

    // The socket is injected (as the SDK allows), so the test can hold one `subscribed`
    // reply back while live events pass it: the replica then buffers them.
    const held: Array<() => void> = [];
    let holdReplies = false;
    class HoldingSocket implements WebSocketLike {
      readonly #ws: WebSocket;
      onopen: ((event: unknown) => void) | null = null;
      onmessage: ((event: { data: unknown }) => void) | null = null;
      onclose: ((event: { code: number; reason: string }) => void) | null = null;
      onerror: ((event: unknown) => void) | null = null;
      constructor(url: string) {
        this.#ws = new WebSocket(url);
        this.#ws.onopen = (event) => this.onopen?.(event);
        this.#ws.onerror = (event) => this.onerror?.(event);
        this.#ws.onclose = (event) => this.onclose?.({ code: event.code, reason: event.reason });
        this.#ws.onmessage = (event) => {
          // The gateway sends text frames only; ws hands those over as strings.
          const text = typeof event.data === 'string' ? event.data : '';
          const deliver = () => this.onmessage?.({ data: text });
          if (holdReplies && text.includes('"type":"subscribed"')) held.push(deliver);
          else deliver();
        };
      }
      get readyState(): number {
        return this.#ws.readyState;
      }
      send(data: string): void {
        this.#ws.send(data);
      }
      close(code?: number, reason?: string): void {
        this.#ws.close(code, reason);
      }
    }

    const client = new TradeSyncClient({ url: first.wsUrl, WebSocket: HoldingSocket satisfies WebSocketConstructor, logger: quiet, backoff: { delaysMs: [50], jitter: 0 } });
    const attemptsSeen = new Set<number>();
    client.on('status', (status: ClientStatus) => {
      if (status.state === 'reconnecting') attemptsSeen.add(status.attempt);
    });
    let liveEvents = 0;
    client.on('message', (m) => {
      if (m.type === 'order:updated') liveEvents++;
      if (m.type === 'batch_update') liveEvents += (m.events as unknown[]).length;
    });
    const orders = client.subscribe('orders:demo');
    await publish(first.url, [order('demo')]);
    await vi.waitFor(() => expect(orders.position?.offset).toBe(1));

    type Reporter = { toastShown(): void; flush(): Promise<void>; stop(): void };
    const { startReporting } = (await import(pathToFileURL(join(dir, FILES['client-metrics-reporter'])).href)) as {
      startReporting: (client: TradeSyncClient, gateway: string, options?: { everyMs?: number }) => Reporter;
    };
    // Posts only when asked (the default is every 15 s).
    const reporter = startReporting(client, `http://127.0.0.1:${port}`, { everyMs: 3_600_000 });
    try {
      holdReplies = true;
      await first.stop();
      await vi.waitFor(() => expect(client.status.state).toBe('reconnecting'));
      await using second = await startGateway({ port }, { dataDir: first.dataDir });
      // Reconnected and resubscribed; the reply is held: five live orders arrive meanwhile.
      await vi.waitFor(() => expect(held).toHaveLength(1), { timeout: 10_000 });
      await publish(second.url, Array.from({ length: 5 }, () => order('demo')));
      await vi.waitFor(() => expect(liveEvents).toBe(5));
      expect(orders.position?.offset).toBe(1);
      holdReplies = false;
      for (const deliver of held.splice(0)) deliver();
      await vi.waitFor(() => expect(orders.position?.offset).toBe(6));
      expect(client.status.state).toBe('connected');

      reporter.toastShown();
      reporter.toastShown();
      await reporter.flush();
      expect(await metric(second.url, 'tradesync_client_metric_reports_total')).toBe(1);
      expect(await metric(second.url, 'tradesync_client_reconnect_attempts_total')).toBe(attemptsSeen.size);
      expect(attemptsSeen.size).toBeGreaterThanOrEqual(1);
      expect(await metric(second.url, 'tradesync_client_reconnect_successes_total')).toBe(1);
      expect(await metric(second.url, 'tradesync_client_resync_buffer_events')).toBe(5);
      expect(await metric(second.url, 'tradesync_client_toasts_shown_total')).toBe(2);
      // Counted once: a flush with nothing new posts nothing.
      await reporter.flush();
      expect(await metric(second.url, 'tradesync_client_metric_reports_total')).toBe(1);
    } finally {
      reporter.stop();
      client.disconnect();
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('quotes in its troubleshooting section only messages the code really sends or logs', () => {
    const section = GUIDE.slice(GUIDE.indexOf('## Troubleshooting'));
    expect(section.length).toBeGreaterThan(1000);
    // Backticked text with a space is a message; `…` stands for a variable part.
    const quoted = [...section.matchAll(/`([^`\n]*)`/g)].map((m) => m[1]!).filter((text) => text.includes(' '));
    expect(quoted.length).toBeGreaterThan(25);
    const sources = ['packages/client/src', 'packages/server/src', 'packages/protocol/src', 'packages/dashboard/src'].flatMap((d) => filesUnder(join(REPO, d))).map((f) => readFileSync(f, 'utf8'));
    const missing = quoted.filter((message) => {
      const fragments =
        ASSEMBLED[message] ??
        message
          .split('…')
          .map((f) => f.replace(/^[^\p{L}\p{N}{]+|[^\p{L}\p{N}}]+$/gu, ''))
          .filter((f) => f.length >= 4);
      return fragments.length === 0 || !fragments.every((fragment) => sources.some((source) => source.includes(fragment)));
    });
    expect(missing).toEqual([]);
  });
});

/** Messages the code puts together from pieces (a template with a choice in it): each piece must be there. */
const ASSEMBLED: Record<string, readonly string[]> = {
  'refused a WebSocket upgrade: foreign origin': ['refused a WebSocket upgrade: ${', "'foreign origin'"],
  'refused a WebSocket upgrade: unknown host': ['refused a WebSocket upgrade: ${', "'unknown host'"],
};

function filesUnder(root: string): string[] {
  return readdirSync(root).flatMap((name) => {
    const path = join(root, name);
    return statSync(path).isDirectory() ? filesUnder(path) : /\.(ts|tsx)$/.test(name) ? [path] : [];
  });
}
