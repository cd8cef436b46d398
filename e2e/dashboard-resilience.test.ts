import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { EmbeddedEngine } from '@tradesync/server';
import { httpJson, metric } from '@tradesync/testing';
import { UnreadableStreamsEngine } from '@tradesync/testing/unreadable-engine';
import { ARTIFACTS, countSockets, deskEvents, launchBrowser, marketHistory, publishAll, restartableDeskGateway, startDeskGateway } from './support/desk.js';

/**
 * Never stale: the dashboard through a gateway restart (same port, same data) and
 * through a sync that fails (the banner, then Force Sync).
 */
let browser: Browser;

beforeAll(async () => {
  browser = await launchBrowser();
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

const statusText = (page: Page) => page.locator('.conn-text').textContent();

/** The positions and open orders on screen, as sorted lists of their keys and quantities. */
async function onScreen(page: Page): Promise<{ positions: string[]; orders: string[] }> {
  return page.evaluate(() => ({
    positions: [...document.querySelectorAll('[data-testid="positions-table"] tr[data-symbol]')].map((r) => `${r.getAttribute('data-symbol')}=${r.getAttribute('data-quantity')}`).sort(),
    orders: [...document.querySelectorAll('[data-testid="orders-table"] tr[data-order-id]')].map((r) => r.getAttribute('data-order-id') ?? '').sort(),
  }));
}

async function fromServer(url: string): Promise<{ positions: string[]; orders: string[] }> {
  const { body } = await httpJson('GET', `${url}/api/state/snapshot?account=demo`);
  const positions = (body.positions as Array<{ symbol: string; quantity: string }>).map((p) => `${p.symbol}=${p.quantity}`).sort();
  const orders = (body.pending_orders as Array<{ order_id: string }>).map((o) => o.order_id).sort();
  return { positions, orders };
}

describe('the dashboard stays true', { timeout: 90_000 }, () => {
  it('survives a gateway restart: Reconnecting (attempt n/10) → Live → State synchronized, and shows what the server has', async () => {
    await using desk = await restartableDeskGateway();
    await publishAll(desk.gw.url, [...marketHistory('demo', 60), ...deskEvents('demo')]);
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const sockets = countSockets(page);
    await page.goto(`${desk.gw.url}/`);
    await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe('Live');
    await expect.poll(() => page.locator('[data-testid="positions-table"] tr[data-symbol]').count()).toBe(3);

    await desk.stop();
    await expect.poll(() => statusText(page), { timeout: 10_000 }).toMatch(/^Reconnecting \(attempt \d+\/10\)/);
    await expect.poll(() => page.locator('.countdown').textContent(), { timeout: 5000 }).toMatch(/^Retrying in \d+s…$/);
    // Panels grey out while the data cannot be trusted to be current.
    expect(await page.locator('[data-panel="positions"]').getAttribute('data-stale')).toBe('true');
    await page.screenshot({ path: `${ARTIFACTS}/reconnecting.png` });

    const gw = await desk.restart();
    // What changed while the page was away: it must show it after the resync.
    await publishAll(gw.url, [
      { stream: 'portfolio:demo', type: 'position:closed', data: { symbol: 'AAPL' } },
      { stream: 'portfolio:demo', type: 'position:updated', data: { symbol: 'BTC-USD', side: 'long', quantity: '0.7000', avg_price: '41900.00', mark_price: '42100.00', unrealized_pnl: '140.00' } },
      { stream: 'orders:demo', type: 'order:closed', data: { order_id: 'ord-demo-1', status: 'filled' } },
      { stream: 'orders:demo', type: 'order:updated', data: { order_id: 'ord-after-restart', symbol: 'MSFT', side: 'sell', order_type: 'limit', quantity: '5', price: '420.00', filled_quantity: '0', status: 'open', session_id: 's1', created_at: new Date().toISOString() } },
    ]);
    await page.getByText('State synchronized').waitFor({ timeout: 30_000 });
    expect(await statusText(page)).toBe('Live');
    await expect.poll(() => page.locator('[data-panel="positions"]').getAttribute('data-stale')).toBe('false');
    await expect.poll(() => onScreen(page)).toEqual(await fromServer(gw.url));
    const shown = await onScreen(page);
    expect(shown.positions).toContain('BTC-USD=0.7000');
    expect(shown.orders).toContain('ord-after-restart');
    expect(shown.orders).not.toContain('ord-demo-1');
    await page.screenshot({ path: `${ARTIFACTS}/resynced.png` });
    // A reconnect replaces the socket (a try while the gateway was still starting may add one); never two at once.
    expect(sockets.count).toBeGreaterThanOrEqual(2);
    expect(sockets.maxOpen).toBe(1);
    await page.close();
  });

  it('"Reconnect now" skips the backoff wait (Live at once, not after the countdown), and the page reports its reconnects and toasts to /metrics', async () => {
    await using desk = await restartableDeskGateway();
    const first = desk.gw;
    await publishAll(first.url, deskEvents('demo'));
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    // Client metrics every second (15 s by default), so the test sees them soon.
    await page.goto(`${first.url}/?metricsEveryMs=1000`);
    await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe('Live');
    // The desk's campaign above 80% made a toast; the page reports it.
    await expect.poll(() => metric(first.url, 'tradesync_client_toasts_shown_total'), { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    await desk.stop();
    // Backoff 1, 2, 4, 8 s (±20%): wait for a countdown of at least 6 s.
    const countdown = page.locator('.countdown');
    await expect.poll(async () => Number(/(\d+)s/.exec((await countdown.textContent().catch(() => '')) ?? '')?.[1] ?? 0), { timeout: 20_000 }).toBeGreaterThanOrEqual(6);
    const gw = await desk.restart();
    await page.getByRole('button', { name: 'Reconnect now' }).click();
    // Well before the countdown would have run out.
    await expect.poll(() => statusText(page), { timeout: 4000 }).toBe('Live');
    // The page reports its failed tries and the reconnect that worked (POST /api/client-metrics).
    await expect.poll(() => metric(gw.url, 'tradesync_client_reconnect_successes_total'), { timeout: 5000 }).toBe(1);
    expect(await metric(gw.url, 'tradesync_client_reconnect_attempts_total')).toBeGreaterThanOrEqual(3);
    await page.close();
  });

  it('shows a banner when sync fails, and Force Sync recovers', async () => {
    await using gw = await startDeskGateway();
    await publishAll(gw.url, deskEvents('demo'));
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    // Between the page and the gateway: while `drop` is set, subscribe requests go unanswered.
    let drop = false;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        if (drop && typeof message === 'string' && message.includes('"type":"subscribe"')) return;
        server.send(message);
      });
    });
    // A short request timeout (URL parameter) so the failure comes in seconds, not a minute.
    await page.goto(`${gw.url}/?requestTimeoutMs=700`);
    await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe('Live');
    await expect.poll(() => page.locator('[data-testid="orders-table"] tr[data-order-id]').count()).toBe(4);

    drop = true;
    await page.getByRole('button', { name: 'Force Sync' }).click();
    const banner = page.getByTestId('sync-banner');
    await banner.waitFor({ timeout: 20_000 });
    expect(await banner.textContent()).toContain('Could not synchronize');
    expect(await banner.getByRole('button', { name: 'refresh the page' }).count()).toBe(1);
    await page.screenshot({ path: `${ARTIFACTS}/sync-failed.png` });

    // While it was failing, the server moved on.
    await publishAll(gw.url, [{ stream: 'orders:demo', type: 'order:closed', data: { order_id: 'ord-demo-2', status: 'cancelled' } }]);
    drop = false;
    await banner.getByRole('button', { name: 'Force Sync' }).click();
    await page.getByText('State synchronized').waitFor({ timeout: 15_000 });
    await expect.poll(() => banner.count()).toBe(0);
    await expect.poll(() => page.locator('tr[data-order-id="ord-demo-2"]').count()).toBe(0);
    await page.close();
  });

  it('when one stream of the account cannot sync, the banner names it alone, and Force Sync asks again only for it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-desk-partial-'));
    const engine = new UnreadableStreamsEngine(new EmbeddedEngine({ dataDir }));
    await using gw = await startDeskGateway({ dataDir, engine });
    await publishAll(gw.url, deskEvents('demo'));
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const subscribes: string[] = [];
    page.on('websocket', (ws) =>
      ws.on('framesent', ({ payload }) => {
        const frame = typeof payload === 'string' ? (JSON.parse(payload) as { type?: string; data?: { stream?: string } }) : {};
        if (frame.type === 'subscribe' && frame.data?.stream) subscribes.push(frame.data.stream);
      }),
    );
    await page.goto(`${gw.url}/`);
    await expect.poll(() => statusText(page), { timeout: 15_000 }).toBe('Live');
    await expect.poll(() => page.locator('[data-testid="orders-table"] tr[data-order-id]').count()).toBe(4);
    const streams = [...new Set(subscribes)];
    expect(streams).toEqual(expect.arrayContaining(['orders:demo', 'portfolio:demo', 'signals:demo']));

    // The log behind signals:demo goes away; the gateway finds out when it re-reads it.
    await engine.breakStreams('signals:demo');
    await expect.poll(() => gw.gateway.store.unavailable('signals:demo')).toBeDefined();
    await page.getByRole('button', { name: 'Force Sync' }).click();
    const banner = page.getByTestId('sync-banner');
    await banner.waitFor({ timeout: 20_000 });
    const text = (await banner.textContent()) ?? '';
    expect(text).toContain('Could not synchronize signals:demo');
    for (const other of streams.filter((s) => s !== 'signals:demo')) expect(text).not.toContain(other);
    // Every other panel synced: the orders are there.
    expect(await page.locator('[data-testid="orders-table"] tr[data-order-id]').count()).toBe(4);
    await page.screenshot({ path: `${ARTIFACTS}/sync-partially-failed.png` });

    engine.heal();
    await expect.poll(() => gw.gateway.store.unavailable('signals:demo'), { timeout: 10_000 }).toBeUndefined();
    await publishAll(gw.url, [{ stream: 'signals:demo', type: 'signal:new', data: { id: 'sig-after-heal', symbol: 'ETH-USD', pattern_type: 'SPRING', confidence_score: 81, status: 'pending', session_id: 'demo-s1', created_at: new Date().toISOString(), side: 'buy', entry_price: '2250.00', stop_loss: '2223.00', target_price: '2304.00', quantity: '0.250', risk_reward: '2.00', phase: 'C' } }]);
    const before = subscribes.length;
    await banner.getByRole('button', { name: 'Force Sync' }).click();
    await page.getByText('State synchronized').waitFor({ timeout: 15_000 });
    await expect.poll(() => banner.count()).toBe(0);
    // Only what failed was asked again.
    expect(subscribes.slice(before)).toEqual(['signals:demo']);
    await expect.poll(() => page.locator('[data-signal-id="sig-after-heal"]').count()).toBe(1);
    await page.close();
  });
});
