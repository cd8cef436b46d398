import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startGateway } from '@tradesync/testing';

describe('dashboard_dir', () => {
  it('serves the page from a folder given relative to the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tradesync-page-'));
    try {
      writeFileSync(join(dir, 'index.html'), '<!doctype html><title>A page</title>');
      // As `TRADESYNC_DASHBOARD_DIR=examples/vue/dist tradesync serve` passes it.
      await using gw = await startGateway({ dashboardDir: relative(process.cwd(), dir) });
      const res = await fetch(`${gw.url}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<title>A page</title>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
