import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `tradesync serve`, under a pseudo-terminal when `tty` (util-linux `script`), and collects what it prints. */
function serve(tty: boolean, extra: string[] = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-serve-logs-'));
  dirs.push(dataDir);
  const args = [...TRADESYNC_CLI, 'serve', '--port', '0', '--no-simulator', '--data-dir', dataDir, ...extra];
  const child = tty
    ? spawn('script', ['-qefc', [process.execPath, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { text: '' };
  child.stdout?.on('data', (chunk: Buffer) => (out.text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (out.text += chunk.toString()));
  return out;
}

const gatewayUrl = (text: string): string | undefined => /TradeSync gateway on (http:\/\/[^\s]+)/.exec(text)?.[1];

describe('tradesync serve logs', () => {
  it('writes JSON lines to a pipe, and no line per HTTP request at info', async () => {
    const out = serve(false);
    await vi.waitFor(() => expect(gatewayUrl(out.text)).toBeDefined(), { timeout: 20_000 });
    for (let i = 0; i < 3; i++) expect((await fetch(`${gatewayUrl(out.text)!}/health`)).status).toBe(200);
    await vi.waitFor(() => expect(out.text).toContain('"msg":"gateway listening"'));
    const json = out.text.split('\n').filter((l) => l.startsWith('{'));
    expect(json.length).toBeGreaterThan(0);
    expect(json.map((l) => (JSON.parse(l) as { msg: string }).msg)).not.toContain('request completed');
    expect(out.text).not.toContain('incoming request');
  });

  it('logs each request at debug, with its status', async () => {
    const out = serve(false, ['--log-level', 'debug']);
    await vi.waitFor(() => expect(gatewayUrl(out.text)).toBeDefined(), { timeout: 20_000 });
    await fetch(`${gatewayUrl(out.text)!}/health`);
    await vi.waitFor(() => expect(out.text).toMatch(/"url":"\/health","status":200.*"msg":"request"/));
  });

  it('writes readable lines to a terminal', async () => {
    const out = serve(true);
    await vi.waitFor(() => expect(out.text).toContain('gateway listening'), { timeout: 20_000 });
    const line = out.text.split(/\r?\n/).find((l) => l.includes('gateway listening'))!;
    expect(line).toMatch(/INFO/);
    expect(line.trimStart().startsWith('{')).toBe(false);
  });
});
