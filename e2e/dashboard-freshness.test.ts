import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { httpJson, order } from '@tradesync/testing';
import { ARTIFACTS, deskEvents, launchBrowser, marketHistory, pageErrors, publishAll, startDeskGateway } from './support/desk.js';

/**
 * Provably fresh, in Chromium: the debug panel shows each stream verified by the
 * server's checksums; market and indicator streams are conflated to a readable rate;
 * and when the server's positions for a stream stop coming while its events still do,
 * that panel greys and says for how long — until they come back.
 */
let browser: Browser;

beforeAll(async () => {
  browser = await launchBrowser();
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

const INTERVAL = 300;

describe('the dashboard proves its streams fresh', { timeout: 90_000 }, () => {
  it('shows verified streams, conflates market data, and greys a panel whose positions stop', async () => {
    await using gw = await startDeskGateway({ positionIntervalMs: INTERVAL });
    await publishAll(gw.url, [...marketHistory('demo', 60), ...deskEvents('demo')]);
    const page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
    const errors = pageErrors(page);
    // The debug panel is closed by default; open it for this page.
    await page.addInitScript(() => {
      const settings = JSON.parse(localStorage.getItem('tradesync.settings') ?? '{}') as { panels?: Record<string, boolean> };
      localStorage.setItem('tradesync.settings', JSON.stringify({ ...settings, panels: { ...(settings.panels ?? {}), debug: true } }));
    });
    await page.goto(`${gw.url}/`);
    await expect.poll(() => page.locator('.conn-text').textContent(), { timeout: 15_000 }).toBe('Live');

    // Every stream the desk holds is proven by a checksum (each gets a position at least every 6 intervals).
    const ordersRow = page.locator('[data-panel="debug"] tr[data-stream="orders:demo"] [data-verified]');
    await publishAll(gw.url, [order('demo', { order_id: 'fresh-1' })]);
    await expect.poll(() => ordersRow.textContent(), { timeout: 10_000 }).toMatch(/^at #\d+, (just now|\d+s ago)$/);
    await expect.poll(() => page.locator('[data-panel="debug"] tr[data-stream="market:BTC-USD"] [data-verified]').textContent(), { timeout: 10_000 }).toMatch(/^at #\d+/);

    // The server holds the desk's market and indicator subscriptions conflated at 10 a second, the rest not.
    const { body } = await httpJson('GET', `${gw.url}/api/admin/websocket/connections`);
    const subscriptions = (body.connections as Array<{ subscriptions: Array<{ stream: string; max_rate?: number }> }>).flatMap((c) => c.subscriptions);
    for (const s of subscriptions) expect(s.max_rate, s.stream).toBe(s.stream.startsWith('market:') || s.stream.startsWith('indicators:') ? 10 : undefined);

    // The server stops proving positions while events keep coming: the orders panel greys and says so.
    gw.gateway.ctx.positions.stop();
    let n = 0;
    const publishing = setInterval(() => void publishAll(gw.url, [order('demo', { order_id: `busy-${n++ % 3}` })]), 150);
    try {
      const panel = page.locator('[data-panel="orders"]');
      await expect.poll(() => panel.getAttribute('data-stale'), { timeout: 10_000 }).toBe('true');
      await expect.poll(() => panel.locator('[data-age]').textContent(), { timeout: 5000 }).toMatch(/^no update from the server for \d+s · /);
      await expect.poll(() => ordersRow.textContent(), { timeout: 5000 }).toMatch(/^stale · at #\d+/);
      await page.screenshot({ path: `${ARTIFACTS}/stale-panel.png` });

      gw.gateway.ctx.positions.start();
      await expect.poll(() => panel.getAttribute('data-stale'), { timeout: 10_000 }).toBe('false');
      await expect.poll(() => ordersRow.textContent(), { timeout: 5000 }).toMatch(/^at #\d+/);
    } finally {
      clearInterval(publishing);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
});
