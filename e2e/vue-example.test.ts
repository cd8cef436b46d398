import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { httpJson, order, startGateway, type TestGateway } from '@tradesync/testing';
import { ARTIFACTS, countSockets, launchBrowser, pageErrors, publishAll } from './support/desk.js';

/**
 * The Vue 3 + Pinia example (examples/vue) in Chromium, served by a real gateway as its
 * dashboard (same origin, so the gateway accepts its socket): one socket, live orders
 * through the Pinia plugin, and a restart of the gateway it survives with the current
 * state and "State synchronized".
 */
const EXAMPLE_DIST = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'examples/vue/dist');

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(join(EXAMPLE_DIST, 'index.html'))) {
    throw new Error(`the Vue example is not built (${EXAMPLE_DIST}/index.html is missing): run \`npm run build\` (npm test runs it in pretest)`);
  }
  browser = await launchBrowser();
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

const serve = (options: { port?: number; dataDir?: string } = {}) =>
  startGateway({ dashboardDir: EXAMPLE_DIST, ...(options.port ? { port: options.port } : {}) }, { keepData: true, ...(options.dataDir ? { dataDir: options.dataDir } : {}) });

const statusText = (page: Page) => page.getByTestId('status').textContent();
const onScreen = (page: Page) => page.$$eval('[data-testid="orders"] tr[data-order-id]', (rows) => rows.map((r) => r.getAttribute('data-order-id') ?? '').sort());

async function fromServer(url: string): Promise<string[]> {
  const { body } = await httpJson('GET', `${url}/api/state/snapshot?account=demo`);
  return (body.pending_orders as Array<{ order_id: string }>).map((o) => o.order_id).sort();
}

describe('the Vue example', { timeout: 90_000 }, () => {
  it('shows open orders live over one socket, and after a gateway restart says "State synchronized" with the current orders', async () => {
    let gw: TestGateway | undefined = await serve();
    const port = gw.gateway.port;
    const dataDir = gw.dataDir;
    try {
      await publishAll(gw.url, [order('demo', { order_id: 'ord-1', symbol: 'BTC-USD' }), order('demo', { order_id: 'ord-2', symbol: 'ETH-USD', side: 'sell', price: '2250.00' })]);
      const page = await browser.newPage({ viewport: { width: 1100, height: 520 } });
      const sockets = countSockets(page);
      const errors = pageErrors(page);
      await page.goto(`${gw.url}/`);
      await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe('Live');
      await expect.poll(() => onScreen(page)).toEqual(['ord-1', 'ord-2']);

      // Published over HTTP by a producer: on the page without a reload.
      await publishAll(gw.url, [order('demo', { order_id: 'ord-3', symbol: 'SOL-USD', quantity: '12.5', price: '98.125' })]);
      await expect.poll(() => onScreen(page)).toEqual(['ord-1', 'ord-2', 'ord-3']);
      expect(sockets.count).toBe(1);
      expect(sockets.urls[0]).toBe(`${gw.wsUrl}`);
      // The first connection has nothing to announce.
      expect(await page.getByText('State synchronized').count()).toBe(0);

      await gw.stop();
      await expect.poll(() => statusText(page), { timeout: 10_000 }).toMatch(/^Reconnecting \(attempt \d+\/10\)$/);
      gw = await serve({ port, dataDir });
      // What changed while the page was away: it must show it after the resync.
      await publishAll(gw.url, [
        { stream: 'orders:demo', type: 'order:closed', data: { order_id: 'ord-1', status: 'filled' } },
        order('demo', { order_id: 'ord-after-restart', symbol: 'MSFT', quantity: '5', price: '420.00' }),
      ]);
      await page.getByText('State synchronized').waitFor({ timeout: 30_000 });
      expect(await statusText(page)).toBe('Live');
      const current = await fromServer(gw.url);
      expect(current).toEqual(['ord-2', 'ord-3', 'ord-after-restart']);
      await expect.poll(() => onScreen(page)).toEqual(current);
      await page.screenshot({ path: join(ARTIFACTS, 'vue-example-resynced.png') });
      // A reconnect replaces the socket: two in the page's life, never two at once.
      expect(sockets.count).toBe(2);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await gw?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
