import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Simulator } from '@tradesync/simulator';
import { ARTIFACTS, countSockets, launchBrowser, startDeskGateway, type DeskGateway } from './support/desk.js';

/** The out-of-the-box run: the built-in simulator trading, the dashboard watching. */
let gw: DeskGateway;
let sim: Simulator;
let browser: Browser;

beforeAll(async () => {
  gw = await startDeskGateway();
  sim = new Simulator({ sink: gw.gateway, state: gw.gateway.store, seed: 5, rate: 60, desk: { autoExecute: 0.5 } });
  gw.gateway.setCommandHandler(sim.commands);
  await sim.start();
  // A few minutes of simulated trading up front, so every panel has something.
  for (let i = 0; i < 400; i++) await sim.step();
  sim.run();
  browser = await launchBrowser();
  mkdirSync(ARTIFACTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  await browser?.close();
  await gw?.[Symbol.asyncDispose]();
});

describe('the dashboard on the simulator', { timeout: 60_000 }, () => {
  it('shows the simulator’s events in every panel over one socket', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const sockets = countSockets(page);
    await page.goto(`${gw.url}/`);
    await expect.poll(() => page.locator('.conn-text').textContent(), { timeout: 15_000 }).toBe('Live');
    await expect.poll(() => page.getByTestId('equity').textContent()).toMatch(/\d/);
    await expect.poll(() => page.locator('[data-testid="balances-table"] tr[data-currency]').count()).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-testid="strategies-table"] tr[data-instance-id]').count()).toBeGreaterThanOrEqual(5);
    await expect.poll(() => page.locator('[data-testid="indicators-table"] tr[data-symbol]').count()).toBe(5);
    await expect.poll(() => page.locator('[data-testid="patterns-table"] tr[data-pattern-id]').count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-testid="signals-list"] [data-signal-id]').count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId('chart-last').textContent()).toMatch(/\d/);
    // Positions, orders and alerts come and go with trading: their panels are live and synced.
    for (const id of ['positions', 'orders', 'alerts']) {
      await expect.poll(() => page.locator(`[data-panel="${id}"]`).getAttribute('data-stale')).toBe('false');
    }
    // Live: the market moves on screen.
    const before = await page.locator('[data-panel="chart"] [data-age]').textContent();
    expect(before).toMatch(/updated/);
    await page.waitForTimeout(2500);
    await page.screenshot({ path: `${ARTIFACTS}/desk-simulator.png`, fullPage: true });
    expect(sockets.count).toBe(1);
    await page.close();
  });

  it('executes a pending signal through the simulator, or rolls it back with its reason', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${gw.url}/`);
    await expect.poll(() => page.locator('.conn-text').textContent(), { timeout: 15_000 }).toBe('Live');
    const pending = page.locator('[data-testid="signals-list"] [data-status="pending"]').filter({ has: page.getByRole('button', { name: /^Execute/ }) });
    // The simulator's autopilot executes some signals itself: a row can stop being pending
    // between finding it and clicking it. Then take the next pending one.
    let row = page.locator('[data-signal-id]').first();
    for (let attempt = 0; ; attempt++) {
      await expect.poll(() => pending.count(), { timeout: 40_000 }).toBeGreaterThan(0);
      const id = await pending.first().getAttribute('data-signal-id');
      row = page.locator(`[data-signal-id="${id}"]`);
      try {
        await row.getByRole('button', { name: /^Execute/ }).click({ timeout: 2000 });
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
      }
    }
    // Executed, or refused by the paper broker (then back to pending/expired with the reason on the row).
    await expect
      .poll(async () => ((await row.getAttribute('data-status')) === 'executed' ? 'executed' : (await row.textContent())?.includes('Execute failed') ? 'rolled back' : 'waiting'), { timeout: 15_000 })
      .not.toBe('waiting');
    await page.close();
  });
});
