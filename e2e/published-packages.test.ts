/**
 * What a team gets from `npm install`: every public workspace package (each one without
 * `private`, so a package added later is covered without an entry here) is built, packed
 * with `npm pack`, and installed from its tarball into a fresh project in the OS temp
 * folder, outside the workspace, where no TypeScript loader and none of the workspace's
 * sources exist. There the installed `tradesync` CLI serves a gateway, a plain Node
 * script uses the installed SDK against it, a TypeScript consumer is type-checked against
 * the shipped `.d.ts`, and publint and attw judge each tarball.
 *
 * Slow by nature (a build, and an npm install that compiles better-sqlite3): everything
 * happens once, in beforeAll, with a generous timeout of its own.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { order, publish } from '@tradesync/testing';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(REPO, 'node_modules/typescript/bin/tsc');
const PUBLINT = join(REPO, 'node_modules/publint/src/cli.js');
const ATTW = join(REPO, 'node_modules/@arethetypeswrong/cli/dist/index.js');
const SETUP_TIMEOUT = 600_000;

interface Manifest {
  name: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  devDependencies?: Record<string, string>;
}
interface Packed {
  readonly name: string;
  readonly tarball: string;
  readonly files: readonly string[];
  readonly typed: boolean;
}
interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const rootManifest = readJson<Manifest & { workspaces: string[] }>(join(REPO, 'package.json'));

/** The workspace packages a team can install: every one that is not private. */
const publicWorkspaces = rootManifest.workspaces
  .map((dir) => readJson<Manifest>(join(REPO, dir, 'package.json')))
  .filter((manifest) => manifest.private !== true);

/**
 * The environment for npm and node children: without the `npm_*` variables an
 * `npm test` parent sets (workspace, prefix, …), which would point the temp project's
 * npm back at the workspace.
 */
const childEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_') && !key.startsWith('TRADESYNC_')));

/** The newest modification time of the files under `dir` (0 when it does not exist). */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) time = Math.max(time, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return time;
}

/**
 * The public packages whose dist is missing or older than a source file. Only they call
 * for a build: `npm test` has just built everything, and rebuilding under the other test
 * files would empty the dashboard's dist while a browser test loads it.
 */
const staleBuilds = (): string[] =>
  rootManifest.workspaces.filter((dir) => {
    const manifest = readJson<Manifest & { scripts?: Record<string, string> }>(join(REPO, dir, 'package.json'));
    return manifest.private !== true && manifest.scripts?.build !== undefined && newest(join(REPO, dir, 'src')) > newest(join(REPO, dir, 'dist'));
  });

/** Runs a command to its end; resolves with its exit code and output, never rejects on a failure exit. */
function run(command: string, args: readonly string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: childEnv(), maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function mustRun(command: string, args: readonly string[], cwd: string): Promise<string> {
  const result = await run(command, args, cwd);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** A browser-style consumer (no Node types): the SDK's types alone must carry it. */
const CONSUMER = `import { TradeSyncClient, describeStatus, type StreamHandle } from '@tradesync/client';
import type { Order, OrdersState } from '@tradesync/protocol';

const client = new TradeSyncClient({ url: 'ws://127.0.0.1:8000/ws' });
const orders: StreamHandle<OrdersState> = client.subscribe<OrdersState>('orders:demo', {
  onState: (state) => {
    for (const order of Object.values(state.orders)) {
      const open: Order = order;
      const quantity: string = open.quantity;
      console.log(quantity);
    }
  },
});
const words: string = describeStatus(client.status);
console.log(words, orders.position?.offset);
orders.unsubscribe();
client.disconnect();
`;

/**
 * The same consumer with two mistakes the shipped types must catch: a quantity taken for
 * a number (it is a decimal string) and a misspelled method.
 */
const WRONG_CONSUMER = CONSUMER.replace('const quantity: string', 'const quantity: number').replace('orders.unsubscribe()', 'orders.unsubscrib()');

/** Plain Node, no loader: prints one JSON line per thing it sees, exits after the first live event. */
const NODE_SCRIPT = `import { WebSocket } from 'ws';
import { TradeSyncClient } from '@tradesync/client';

const say = (line) => console.log(JSON.stringify(line));
const client = new TradeSyncClient({ url: process.env.GATEWAY_WS, WebSocket });
const orders = client.subscribe('orders:pack', {
  onSynced: (info) => say({ synced: true, recovered: info.recovered, offset: info.offset, orders: Object.keys(orders.state.orders) }),
  onEvent: (event) => {
    say({ event: event.type, offset: event.offset, orders: Object.keys(orders.state.orders) });
    orders.unsubscribe();
    client.disconnect();
  },
  onSyncFailed: (info) => {
    say({ failed: info.error.message });
    process.exitCode = 1;
    client.disconnect();
  },
});
`;

const TSCONFIG = (include: string[], types: string[]) =>
  JSON.stringify({
    compilerOptions: {
      target: 'ES2023',
      lib: ['ES2023', 'DOM'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noEmit: true,
      types,
      skipLibCheck: true,
      jsx: 'react-jsx',
    },
    include,
  });

/** The ```ts and ```tsx blocks of a README, with the extension each is checked under. */
const tsBlocks = (markdown: string): Array<{ code: string; ext: 'ts' | 'tsx' }> =>
  [...markdown.matchAll(/```(tsx?)\n([\s\S]*?)```/g)].map((m) => ({ ext: m[1] as 'ts' | 'tsx', code: m[2]! }));

describe('the published packages, installed from their tarballs into a fresh project', () => {
  let work = '';
  let app = '';
  let packed: Packed[] = [];
  let gateway: ChildProcessWithoutNullStreams | undefined;
  let gatewayUrl = '';
  let installSeconds = 0;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tradesync-packages-'));
    app = join(work, 'app');
    const tarballs = join(work, 'tarballs');
    mkdirSync(app);
    mkdirSync(tarballs);

    if (staleBuilds().length > 0) await mustRun(process.execPath, ['scripts/build.mjs'], REPO);
    expect(staleBuilds()).toEqual([]);
    const packArgs = ['pack', '--json', '--pack-destination', tarballs, ...publicWorkspaces.flatMap((m) => ['-w', m.name])];
    const report = JSON.parse(await mustRun('npm', packArgs, REPO)) as { name: string; filename: string; files: { path: string }[] }[];
    packed = report.map((entry) => {
      const manifest = publicWorkspaces.find((m) => m.name === entry.name)!;
      return {
        name: entry.name,
        tarball: join(tarballs, entry.filename),
        files: entry.files.map((f) => f.path),
        typed: JSON.stringify(manifest.exports ?? {}).includes('"types"'),
      };
    });

    // The project a team would have: its own package.json, the tarballs, and what its code
    // imports itself (ws for Node, the @types packages for the README examples, React, Vue and
    // Pinia for the bindings', whose peer dependencies they are).
    const serverDev = readJson<Manifest>(join(REPO, 'packages/server/package.json')).devDependencies ?? {};
    const reactDev = readJson<Manifest>(join(REPO, 'packages/react/package.json')).devDependencies ?? {};
    const vueDev = readJson<Manifest>(join(REPO, 'packages/vue/package.json')).devDependencies ?? {};
    const extras = [
      `ws@${rootManifest.devDependencies!.ws}`,
      `@types/ws@${serverDev['@types/ws']}`,
      `@types/node@${rootManifest.devDependencies!['@types/node']}`,
      // The React binding's peer, as a React app has it.
      `react@${reactDev.react}`,
      `@types/react@${reactDev['@types/react']}`,
      `vue@${vueDev.vue}`,
      `pinia@${vueDev.pinia}`,
    ];
    // better-sqlite3 (the embedded engine) builds its native module in an install script,
    // which npm 11 warns about until the project approves it.
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: { 'better-sqlite3': true } }));
    const started = Date.now();
    await mustRun('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => p.tarball), ...extras], app);
    installSeconds = (Date.now() - started) / 1000;
    console.log(`packed ${packed.map((p) => p.name).join(', ')}; npm install of the tarballs took ${installSeconds.toFixed(1)} s`);

    // The gateway of the installed CLI: proves `tradesync` runs from its built output.
    gateway = spawn(join(app, 'node_modules/.bin/tradesync'), ['serve', '--port', '0', '--data-dir', join(work, 'data'), '--no-simulator', '--log-level', 'warn'], {
      cwd: app,
      env: childEnv(),
    });
    let out = '';
    gateway.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    gateway.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await vi.waitFor(
      () => {
        if (gateway!.exitCode !== null) throw new Error(`tradesync serve exited ${gateway!.exitCode}: ${out}`);
        const match = /TradeSync gateway on (http:\/\/\S+)/.exec(out);
        expect(match, out).not.toBeNull();
        gatewayUrl = match![1]!;
      },
      { timeout: 30_000, interval: 100 },
    );
  }, SETUP_TIMEOUT);

  afterAll(() => {
    if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs every public package with its built JavaScript, types and README, and no TypeScript sources', () => {
    expect(packed.map((p) => p.name)).toEqual(expect.arrayContaining(['@tradesync/protocol', '@tradesync/client', '@tradesync/react', '@tradesync/vue', '@tradesync/server', '@tradesync/simulator', 'tradesync', '@tradesync/dashboard']));
    expect(packed).toHaveLength(publicWorkspaces.length);
    for (const p of packed) {
      expect(p.files, p.name).toContain('README.md');
      expect(p.files.filter((f) => f.startsWith('src/')), p.name).toEqual([]);
      expect(p.files.some((f) => f.startsWith('dist/')), p.name).toBe(true);
      if (p.typed) expect(p.files.filter((f) => f.endsWith('.d.ts')).length, p.name).toBeGreaterThan(0);
    }
    expect(packed.find((p) => p.name === '@tradesync/dashboard')!.files).toContain('dist/index.html');
    expect(packed.find((p) => p.name === '@tradesync/server')!.files).toContain('dist/engines/redis/lua/append.lua');
  });

  it('installs without any TypeScript loader, and the installed CLI serves the built dashboard', async () => {
    expect(existsSync(join(app, 'node_modules/tsx'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/@tradesync/client/src'))).toBe(false);
    const page = await fetch(`${gatewayUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>TradeSync</title>');
  });

  it('runs the SDK from plain Node: subscribes, gets the snapshot, then a live event', async () => {
    expect((await publish(gatewayUrl, [order('pack', { order_id: 'first' })])).status).toBe(200);
    writeFileSync(join(app, 'watch.mjs'), NODE_SCRIPT);
    const child = spawn(process.execPath, ['watch.mjs'], { cwd: app, env: { ...childEnv(), GATEWAY_WS: `${gatewayUrl.replace('http', 'ws')}/ws` } });
    const lines: Record<string, unknown>[] = [];
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      await vi.waitFor(() => expect(lines, stderr).toContainEqual({ synced: true, recovered: false, offset: 1, orders: ['first'] }), { timeout: 15_000 });
      expect((await publish(gatewayUrl, [order('pack', { order_id: 'second' })])).status).toBe(200);
      expect(await exited).toBe(0);
      expect(lines).toContainEqual({ event: 'order:updated', offset: 2, orders: ['first', 'second'] });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('type-checks a TypeScript consumer against the shipped .d.ts, and rejects one that takes a decimal for a number or misspells a method', async () => {
    mkdirSync(join(app, 'good'));
    mkdirSync(join(app, 'wrong'));
    writeFileSync(join(app, 'good/consumer.ts'), CONSUMER);
    writeFileSync(join(app, 'wrong/consumer.ts'), WRONG_CONSUMER);
    writeFileSync(join(app, 'tsconfig.good.json'), TSCONFIG(['good'], []));
    writeFileSync(join(app, 'tsconfig.wrong.json'), TSCONFIG(['wrong'], []));

    const good = await run(process.execPath, [TSC, '-p', 'tsconfig.good.json'], app);
    expect(good.stdout + good.stderr).toBe('');
    expect(good.code).toBe(0);
    const wrong = await run(process.execPath, [TSC, '-p', 'tsconfig.wrong.json'], app);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout).toMatch(/consumer\.ts\(9,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
    expect(wrong.stdout).toMatch(/consumer\.ts\(16,\d+\): error TS2551: Property 'unsubscrib' does not exist on type 'StreamHandle<OrdersState>'/);
    expect(wrong.stdout.match(/error TS/g)).toHaveLength(2);
  });

  it("type-checks the TypeScript examples in the installed packages' READMEs", async () => {
    const dir = join(app, 'readme');
    mkdirSync(dir);
    let count = 0;
    for (const p of packed) {
      const readme = readFileSync(join(app, 'node_modules', p.name, 'README.md'), 'utf8');
      for (const [i, block] of tsBlocks(readme).entries()) {
        writeFileSync(join(dir, `${p.name.replace(/\W+/g, '_')}_${i}.${block.ext}`), `${block.code}\nexport {};\n`);
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(4);
    writeFileSync(join(app, 'tsconfig.readme.json'), TSCONFIG(['readme'], ['node']));
    const result = await run(process.execPath, [TSC, '-p', 'tsconfig.readme.json'], app);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(readdirSync(dir)).toHaveLength(count);
  });

  it('passes publint (strict) and, for each package with types, attw (ESM-only profile)', async () => {
    for (const p of packed) {
      const lint = await run(process.execPath, [PUBLINT, 'run', p.tarball, '--strict'], app);
      expect(lint.code, `${p.name}: ${lint.stdout}${lint.stderr}`).toBe(0);
      expect(lint.stdout, p.name).toContain('All good');
      if (!p.typed) continue;
      const types = await run(process.execPath, [ATTW, p.tarball, '--profile', 'esm-only', '--format', 'ascii', '--no-color'], app);
      expect(types.code, `${p.name}: ${types.stdout}${types.stderr}`).toBe(0);
      expect(types.stdout, p.name).toContain('node16 (from ESM): 🟢 (ESM)');
      expect(types.stdout, p.name).toContain('bundler: 🟢');
    }
  });
});
