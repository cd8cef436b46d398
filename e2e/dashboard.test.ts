import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, countSockets, deskEvents, launchBrowser, marketHistory, pageErrors, publishAll, startDeskGateway, type DeskGateway } from './support/desk.js';

/**
 * The dashboard in a real browser against a real gateway, fed by a producer over
 * HTTP: one socket, every panel, optimistic commands, virtual scrolling, toasts.
 */
let gw: DeskGateway;
let browser: Browser;

beforeAll(async () => {
  gw = await startDeskGateway();
  await publishAll(gw.url, [...marketHistory('demo'), ...deskEvents('demo'), ...deskEvents('demo-2', 29)]);
  browser = await launchBrowser();
  mkdirSync(ARTIFACTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.[Symbol.asyncDispose]();
});

async function openDesk(path = '/', viewport = { width: 1600, height: 1000 }): Promise<{ page: Page; sockets: ReturnType<typeof countSockets>; errors: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const sockets = countSockets(page);
  const errors = pageErrors(page);
  await page.goto(`${gw.url}${path}`);
  await page.getByTestId('connection-status').getByText('Live', { exact: true }).waitFor({ timeout: 15_000 });
  return { page, sockets, errors };
}

const rows = (page: Page, selector: string) => page.locator(selector).count();

describe('the dashboard', { timeout: 60_000 }, () => {
  it('goes Live over exactly one WebSocket, also after opening, closing and switching everything', async () => {
    const { page, sockets, errors } = await openDesk();
    expect(sockets.urls[0]).toMatch(/\/ws$/);
    // Open the one panel that starts closed, close and reopen the others.
    await page.getByRole('button', { name: 'Close Positions panel' }).click();
    await page.getByRole('button', { name: 'Close Chart panel' }).click();
    await expect.poll(() => page.locator('[data-panel="chart"]').count()).toBe(0);
    await page.getByText('View', { exact: true }).click();
    await page.getByRole('checkbox', { name: 'Debug', exact: true }).check();
    await page.getByRole('checkbox', { name: 'Positions', exact: true }).check();
    await page.getByRole('checkbox', { name: 'Chart', exact: true }).check();
    await page.getByText('View', { exact: true }).click();
    for (const id of ['portfolio', 'balances', 'positions', 'orders', 'signals', 'patterns', 'strategies', 'indicators', 'chart', 'alerts', 'debug']) {
      await expect.poll(() => page.locator(`[data-panel="${id}"]`).count()).toBe(1);
    }
    await page.getByLabel('Account').selectOption('demo-2');
    await expect.poll(() => rows(page, '[data-testid="orders-table"] tr[data-order-id^="ord-demo-2-"]')).toBe(4);
    await page.getByLabel('Account').selectOption('demo');
    await expect.poll(() => rows(page, '[data-testid="orders-table"] tr[data-order-id^="ord-demo-"]')).toBe(4);
    await expect.poll(() => page.locator('[data-testid="debug-messages"] li').count(), { timeout: 5000 }).toBeGreaterThan(5);
    expect(sockets.count).toBe(1);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('shows the published data in every panel, and live events as they come', async () => {
    const { page, errors } = await openDesk();
    await expect.poll(() => page.getByTestId('equity').textContent()).toContain('125,046.23');
    await expect.poll(() => rows(page, '[data-testid="balances-table"] tr[data-currency]')).toBe(2);
    await expect.poll(() => rows(page, '[data-testid="positions-table"] tr[data-symbol]')).toBe(3);
    await expect.poll(() => rows(page, '[data-testid="orders-table"] tr[data-order-id]')).toBe(4);
    await expect.poll(() => rows(page, '[data-testid="signals-list"] [data-signal-id]')).toBe(14);
    await expect.poll(() => rows(page, '[data-testid="patterns-table"] tr[data-pattern-id]')).toBe(6);
    await expect.poll(() => rows(page, '[data-testid="strategies-table"] tr[data-instance-id]')).toBe(5);
    await expect.poll(() => rows(page, '[data-testid="indicators-table"] tr[data-symbol]')).toBe(5);
    await expect.poll(() => rows(page, '[data-testid="alerts-list"] [data-alert-id]')).toBe(2);
    await expect.poll(() => page.locator('[data-testid="chart"] canvas').count()).toBeGreaterThan(0);
    // Decimals exactly as published, right-aligned in tabular figures.
    const mark = page.locator('[data-testid="positions-table"] tr[data-symbol="BTC-USD"] td.num').nth(2);
    expect(await mark.textContent()).toBe('42,010.50');
    expect(await mark.evaluate((el) => [getComputedStyle(el).textAlign, getComputedStyle(el).fontVariantNumeric])).toEqual(['right', 'tabular-nums']);
    await page.screenshot({ path: `${ARTIFACTS}/desk-dark.png`, fullPage: true });

    // Live events land in every panel.
    await publishAll(gw.url, [
      { stream: 'portfolio:demo', type: 'position:updated', data: { symbol: 'SOL-USD', side: 'long', quantity: '50', avg_price: '97.100', mark_price: '98.000', unrealized_pnl: '45.00' } },
      { stream: 'portfolio:demo', type: 'balance:updated', data: { currency: 'EUR', total: '5000.00', available: '5000.00', reserved: '0.00' } },
      { stream: 'portfolio:demo', type: 'portfolio:updated', data: { total_value_usd: '125100.00', unrealized_pnl: '91.23', realized_pnl: '1287.40', total_heat: '8.60', available_capacity: '1.40', max_heat: '10.00' } },
      { stream: 'orders:demo', type: 'order:updated', data: { order_id: 'ord-live-1', symbol: 'AAPL', side: 'sell', order_type: 'limit', quantity: '10', price: '195.00', filled_quantity: '0', status: 'open', session_id: 's1', created_at: new Date().toISOString() } },
      { stream: 'signals:demo', type: 'signal:new', data: { id: 'sig-live-1', symbol: 'MSFT', pattern_type: 'SOS', confidence_score: 91, status: 'pending', session_id: 's1', created_at: new Date().toISOString(), side: 'buy' } },
      { stream: 'signals:demo', type: 'pattern_detected', data: { id: 'pat-live-1', symbol: 'MSFT', pattern_type: 'SOS', confidence_score: 91, phase: 'D', test_confirmed: true, detected_at: new Date().toISOString() } },
      { stream: 'state_machines:demo', type: 'state_change', data: { instance_id: 'demo-s1:BTC-USD', state: 'SIGNAL_DETECTED', previous_state: 'MONITORING', conditions_met: 3, conditions_total: 3, reason: 'SOS detected', entered_at: new Date().toISOString() } },
      { stream: 'indicators:demo', type: 'indicator:updated', data: { symbol: 'DOGE-USD', name: 'rsi_14', value: '71.25' } },
      { stream: 'alerts:demo', type: 'liquidation_alert', data: { id: 'liq-live-1', severity: 'critical', message: 'Position near liquidation', symbol: 'SOL-USD', margin_ratio: '0.0610' } },
      { stream: 'market:BTC-USD', type: 'market:tick', data: { symbol: 'BTC-USD', price: '43210.55', timestamp: new Date().toISOString() } },
    ]);
    await expect.poll(() => rows(page, '[data-testid="positions-table"] tr[data-symbol="SOL-USD"]')).toBe(1);
    await expect.poll(() => rows(page, '[data-testid="balances-table"] tr[data-currency="EUR"]')).toBe(1);
    await expect.poll(() => page.getByTestId('equity').textContent()).toContain('125,100.00');
    await expect.poll(() => page.getByTestId('heat').textContent()).toContain('Heat above 80% of limit');
    await expect.poll(() => rows(page, '[data-testid="orders-table"] tr[data-order-id="ord-live-1"]')).toBe(1);
    await expect.poll(() => rows(page, '[data-signal-id="sig-live-1"]')).toBe(1);
    await expect.poll(() => rows(page, '[data-testid="patterns-table"] tr[data-pattern-id="pat-live-1"]')).toBe(1);
    await expect.poll(() => page.locator('tr[data-instance-id="demo-s1:BTC-USD"]').textContent()).toContain('SIGNAL DETECTED');
    await expect.poll(() => rows(page, '[data-testid="indicators-table"] tr[data-symbol="DOGE-USD"]')).toBe(1);
    await expect.poll(() => rows(page, '[data-alert-id="liq-live-1"]')).toBe(1);
    await expect.poll(() => page.getByTestId('chart-last').textContent()).toBe('43,210.55');
    // Each panel says how old its data is.
    expect(await page.locator('[data-panel="positions"] [data-age]').textContent()).toMatch(/updated (now|\d+s ago)/);

    // The light theme, for the record.
    await page.getByText('View', { exact: true }).click();
    await page.getByLabel('Light theme').check();
    await page.getByText('View', { exact: true }).click();
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${ARTIFACTS}/desk-light.png`, fullPage: true });
    await page.getByText('View', { exact: true }).click();
    await page.getByLabel('Light theme').uncheck();
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('executes a signal optimistically: pending, then executed', async () => {
    const { page } = await openDesk();
    gw.commands.delayMs = 1200;
    try {
      const row = page.locator('[data-signal-id="sig-demo-1"]');
      await expect.poll(() => row.getAttribute('data-status')).toBe('pending');
      await row.getByRole('button', { name: /^Execute/ }).click();
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 1000 }).toBe('pending-execute');
      expect(await row.getByTestId('signal-status').textContent()).toBe('executing…');
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 5000 }).toBe('executed');
      expect(gw.commands.received.at(-1)).toMatchObject({ action: 'execute_signal', account: 'demo', data: { signal_id: 'sig-demo-1' } });
    } finally {
      gw.commands.delayMs = 0;
    }
    await page.context().close();
  });

  it('rolls a refused command back, with a message', async () => {
    const { page } = await openDesk();
    await publishAll(gw.url, [
      { stream: 'signals:demo', type: 'signal:new', data: { id: 'sig-refuse-1', symbol: 'ETH-USD', pattern_type: 'SPRING', confidence_score: 77, status: 'pending', session_id: 's1', created_at: new Date().toISOString(), side: 'buy' } },
    ]);
    gw.commands.delayMs = 600;
    try {
      const row = page.locator('[data-signal-id="sig-refuse-1"]');
      await row.getByRole('button', { name: /^Execute/ }).click();
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 1000 }).toBe('pending-execute');
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 5000 }).toBe('pending');
      await expect.poll(() => row.textContent()).toContain('Execute failed: Heat limit reached: no new entries');
      await page.getByText('Execute ETH-USD failed').waitFor({ timeout: 3000 });
      await page.screenshot({ path: `${ARTIFACTS}/rollback.png` });
    } finally {
      gw.commands.delayMs = 0;
    }
    await page.context().close();
  });

  it('cancels an order optimistically', async () => {
    const { page } = await openDesk();
    gw.commands.delayMs = 800;
    try {
      const row = page.locator('tr[data-order-id="ord-demo-3"]');
      await row.getByRole('button', { name: 'Cancel order ord-demo-3' }).click();
      await expect.poll(() => row.textContent(), { timeout: 700 }).toContain('cancelling…');
      await expect.poll(() => row.count(), { timeout: 5000 }).toBe(0);
    } finally {
      gw.commands.delayMs = 0;
    }
    await page.context().close();
  });

  it('keeps only the visible rows of 500 signals in the DOM', async () => {
    const { page } = await openDesk();
    const base = Date.now() - 600_000;
    const many = Array.from({ length: 500 }, (_, i) => ({
      stream: 'signals:demo',
      type: 'signal:new',
      data: { id: `sig-bulk-${i}`, symbol: 'BTC-USD', pattern_type: 'LPS', confidence_score: 50 + (i % 50), status: 'pending', session_id: 's1', created_at: new Date(base + i * 1000).toISOString(), side: 'buy' },
    }));
    await publishAll(gw.url, many);
    const list = page.getByTestId('signals-list');
    await expect.poll(() => list.getAttribute('data-virtual')).toBe('true');
    await expect.poll(() => list.getAttribute('data-count')).not.toBe(null);
    const total = Number(await list.getAttribute('data-count'));
    expect(total).toBeGreaterThanOrEqual(500);
    const inDom = await list.locator('[data-signal-id]').count();
    expect(inDom).toBeGreaterThan(5);
    expect(inDom).toBeLessThan(40);
    // Scrolling brings other rows in, still only a screenful; the oldest is at the bottom.
    const first = await list.locator('[data-signal-id]').first().getAttribute('data-signal-id');
    expect(await list.locator('[data-signal-id="sig-bulk-0"]').count()).toBe(0);
    await list.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await expect.poll(() => list.locator('[data-signal-id="sig-bulk-0"]').count()).toBe(1);
    expect(await list.locator(`[data-signal-id="${first}"]`).count()).toBe(0);
    expect(await list.locator('[data-signal-id]').count()).toBeLessThan(40);
    await page.screenshot({ path: `${ARTIFACTS}/signals-virtual.png` });
    await page.context().close();
  });

  it('throttles toasts to 3 per 10 seconds, and can switch them off for good', async () => {
    const { page } = await openDesk();
    const toasts = page.locator('[data-sonner-toast]');
    const burst = (tag: string) =>
      Array.from({ length: 6 }, (_, i) => ({
        stream: 'signals:demo',
        type: 'signal:new',
        data: { id: `sig-toast-${tag}-${i}`, symbol: 'AAPL', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: 's1', created_at: new Date().toISOString(), side: 'buy' },
      }));
    await publishAll(gw.url, burst('a'));
    await expect.poll(() => toasts.count()).toBe(3);
    await page.waitForTimeout(700);
    expect(await toasts.count()).toBe(3);
    expect(await toasts.first().textContent()).toContain('New signal: SPRING on AAPL');
    // "View details" opens the signal.
    await toasts.first().getByRole('button', { name: 'View details' }).click();
    await expect.poll(() => page.getByTestId('signal-details').isVisible()).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}/toasts-and-details.png` });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByTestId('signal-details').isVisible()).toBe(false);

    // Off: nothing more, and it stays off after a reload (localStorage).
    await page.getByText('View', { exact: true }).click();
    await page.getByTestId('toasts-toggle').uncheck();
    await page.getByText('View', { exact: true }).click();
    await page.reload();
    await page.getByTestId('connection-status').getByText('Live', { exact: true }).waitFor();
    await page.waitForTimeout(500);
    await publishAll(gw.url, burst('b'));
    await expect.poll(() => rows(page, '[data-signal-id="sig-toast-b-5"]')).toBe(1);
    await page.waitForTimeout(500);
    expect(await toasts.count()).toBe(0);
    expect(await page.evaluate(() => (JSON.parse(localStorage.getItem('tradesync.settings') ?? '{}') as { toasts?: boolean }).toasts)).toBe(false);
    await page.context().close();
  });

  it('warns "Campaign C-123 at 85%", shows a rejected signal at severity error, and lets toasts go by themselves after 5 s', async () => {
    // An account of its own: no toast of the desk's data at load takes the throttle's room (3 per 10 s).
    const { page } = await openDesk('/?account=acme');
    const toasts = page.locator('[data-sonner-toast]');
    await publishAll(gw.url, [
      { stream: 'portfolio:acme', type: 'campaign:updated', data: { campaign_id: 'C-123', risk_allocated: '4.25', risk_limit: '5.00', utilization: '85.00', positions_count: 2 } },
      { stream: 'signals:acme', type: 'signal:rejected', data: { id: 'sig-acme-2', status: 'rejected', reason: 'Heat limit reached' } },
    ]);
    const campaign = toasts.filter({ hasText: 'Campaign C-123 at 85%' });
    const rejected = toasts.filter({ hasText: 'Signal rejected' });
    await expect.poll(() => campaign.count()).toBe(1);
    await expect.poll(() => rejected.count()).toBe(1);
    expect(await campaign.getAttribute('data-type')).toBe('warning');
    expect(await rejected.getAttribute('data-type')).toBe('error');
    await page.screenshot({ path: `${ARTIFACTS}/toasts-campaign-rejected.png` });
    // Still there a moment later; gone after their 5 s without anyone touching them.
    await page.waitForTimeout(3000);
    expect([await campaign.count(), await rejected.count()]).toEqual([1, 1]);
    await expect.poll(async () => (await campaign.count()) + (await rejected.count()), { timeout: 8000 }).toBe(0);
    // The campaign stays above 80%: no second warning for the same crossing.
    await publishAll(gw.url, [{ stream: 'portfolio:acme', type: 'campaign:updated', data: { campaign_id: 'C-123', risk_allocated: '4.40', risk_limit: '5.00', utilization: '88.00', positions_count: 2 } }]);
    await page.waitForTimeout(700);
    expect(await campaign.count()).toBe(0);
    await page.context().close();
  });

  it('is keyboard operable and announces status changes', async () => {
    const { page } = await openDesk();
    const live = page.locator('[role="status"][aria-live="polite"]');
    expect(await live.textContent()).toBe('Live');
    // Tab reaches the status (tooltip with connection_id) and the Force Sync button.
    await page.getByTestId('connection-status').focus();
    await expect.poll(() => page.locator('#conn-details').isVisible()).toBe(true);
    expect(await page.getByTestId('connection-id').textContent()).toMatch(/\S{6,}/);
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    expect(['Force Sync', 'Reconnect now']).toContain(focused);
    await page.context().close();
  });
});
