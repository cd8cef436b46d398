import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { CommandHandler, Engine } from '@tradesync/server';
import { publish, startGateway, type TestGateway } from '@tradesync/testing';

/**
 * What the dashboard's browser tests share: the built dashboard, a gateway serving it
 * on a free port, Debian's Chromium, a command handler standing in for a trading
 * engine, and a realistic desk of data published over HTTP like any producer.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DASHBOARD_DIST = join(ROOT, 'packages/dashboard/dist');
export const ARTIFACTS = join(ROOT, 'test-results');

/** The e2e tests run against the built dashboard; say so plainly when it is not there. */
function assertDashboardBuilt(): void {
  if (!existsSync(join(DASHBOARD_DIST, 'index.html'))) {
    throw new Error(`the dashboard is not built (${DASHBOARD_DIST}/index.html is missing): run \`npm run build\` (npm test runs it in pretest)`);
  }
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

export interface DeskGateway extends TestGateway {
  readonly commands: TestCommands;
}

/** Starts a gateway serving the built dashboard, with the test command handler. */
export async function startDeskGateway(options: { port?: number; dataDir?: string; keepData?: boolean; positionIntervalMs?: number; engine?: Engine } = {}): Promise<DeskGateway> {
  assertDashboardBuilt();
  const commands = new TestCommands();
  const gw = await startGateway(
    {
      dashboardDir: DASHBOARD_DIST,
      ...(options.port ? { port: options.port } : {}),
      ...(options.positionIntervalMs !== undefined ? { positionIntervalMs: options.positionIntervalMs } : {}),
    },
    { commands, ...(options.dataDir ? { dataDir: options.dataDir } : {}), ...(options.keepData ? { keepData: true } : {}), ...(options.engine ? { engine: options.engine } : {}) },
  );
  commands.gateway = gw;
  return Object.assign(gw, { commands });
}

/**
 * A desk gateway that stops and starts again on the same port with the same data, as a
 * restarted server does; `gw` is the one running now. `await using` stops it and removes
 * the data.
 */
export interface RestartableDesk extends AsyncDisposable {
  readonly gw: DeskGateway;
  stop(): Promise<void>;
  restart(): Promise<DeskGateway>;
}

export async function restartableDeskGateway(): Promise<RestartableDesk> {
  let gw = await startDeskGateway({ keepData: true });
  const { port } = gw.gateway;
  const { dataDir } = gw;
  return {
    get gw() {
      return gw;
    },
    stop: () => gw.stop(),
    async restart() {
      gw = await startDeskGateway({ port, dataDir, keepData: true });
      return gw;
    },
    async [Symbol.asyncDispose]() {
      await gw.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Executes the commands the dashboard sends, like the simulator's paper broker would:
 * answers, then publishes the events the command caused. Signals whose id contains
 * `refuse` are refused (for rollback tests); `delayMs` slows every answer down so a
 * test can see the pending state.
 */
class TestCommands implements CommandHandler {
  readonly actions = ['execute_signal', 'reject_signal', 'cancel_order'];
  gateway: TestGateway | undefined;
  delayMs = 0;
  readonly received: Array<{ action: string; account: string; data: Record<string, unknown> }> = [];

  async handle(command: { action: string } & Record<string, unknown>, context: { account: string }) {
    this.received.push({ action: command.action, account: context.account, data: command });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const gateway = this.gateway?.gateway;
    if (!gateway) return { success: false, error: { code: 'UNAVAILABLE', message: 'no engine' } };
    const id = [command.signal_id, command.order_id].find((v): v is string => typeof v === 'string') ?? '';
    if (id.includes('refuse')) return { success: false, error: { code: 'RISK_LIMIT', message: 'Heat limit reached: no new entries' } };
    switch (command.action) {
      case 'execute_signal':
        await gateway.publish([{ stream: `signals:${context.account}`, type: 'signal:executed', data: { id, status: 'executed', executed_at: new Date().toISOString() } }]);
        return { success: true, result: { signal_id: id } };
      case 'reject_signal':
        await gateway.publish([{ stream: `signals:${context.account}`, type: 'signal:rejected', data: { id, status: 'rejected', reason: 'rejected by user' } }]);
        return { success: true, result: { signal_id: id } };
      case 'cancel_order':
        await gateway.publish([{ stream: `orders:${context.account}`, type: 'order:closed', data: { order_id: id, status: 'cancelled' } }]);
        return { success: true, result: { order_id: id } };
      default:
        return { success: false, error: { code: 'UNKNOWN_ACTION', message: command.action } };
    }
  }
}

/* ---------------------------------------------------------------- data */

export const SYMBOL_PRICES: Record<string, number> = { 'BTC-USD': 42000, 'ETH-USD': 2250, 'SOL-USD': 98, AAPL: 189.5, MSFT: 415.2 };
const PATTERNS = ['SPRING', 'UTAD', 'SOS', 'LPS', 'SC', 'AR', 'ST'] as const;

/** A seeded random number generator, so screenshots are stable. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const fix = (n: number, dp: number) => n.toFixed(dp);
const dpOf = (symbol: string) => (symbol === 'SOL-USD' ? 3 : 2);

/** Market history: `points` ticks per symbol, one a second, ending now; and EMA 20 on the account's indicators. */
export function marketHistory(account: string, points = 240, seed = 7): unknown[] {
  const random = rng(seed);
  const out: unknown[] = [];
  const start = Date.now() - points * 1000;
  for (const [symbol, p0] of Object.entries(SYMBOL_PRICES)) {
    let price = p0;
    let ema = p0;
    for (let i = 0; i < points; i++) {
      price *= 1 + (random() - 0.5) * 0.004;
      ema += (2 / 21) * (price - ema);
      const timestamp = new Date(start + i * 1000).toISOString();
      out.push({ stream: `market:${symbol}`, type: 'market:tick', data: { symbol, price: fix(price, dpOf(symbol)), timestamp } });
      if (i % 2 === 0) out.push({ stream: `indicators:${account}`, type: 'indicator:updated', data: { symbol, name: 'ema_20', value: fix(ema, dpOf(symbol)), timestamp } });
    }
  }
  return out;
}

/** A desk's worth of data for one account: every panel has something to show. */
export function deskEvents(account: string, seed = 11): unknown[] {
  const random = rng(seed);
  const now = Date.now();
  const iso = (agoMs: number) => new Date(now - agoMs).toISOString();
  const events: unknown[] = [];
  const push = (stream: string, type: string, data: Record<string, unknown>) => events.push({ stream: `${stream}:${account}`, type, data });
  push('portfolio', 'balance:updated', { currency: 'USD', total: '100000.00', available: '81234.56', reserved: '18765.44' });
  push('portfolio', 'balance:updated', { currency: 'USDT', total: '25000.00', available: '25000.00', reserved: '0.00' });
  const positions = [
    { symbol: 'BTC-USD', side: 'long', quantity: '0.4500', avg_price: '41850.00', mark_price: '42010.50', unrealized_pnl: '72.23', liquidation_price: '37980.10' },
    { symbol: 'ETH-USD', side: 'short', quantity: '3.200', avg_price: '2262.40', mark_price: '2249.90', unrealized_pnl: '40.00', liquidation_price: '2480.00' },
    { symbol: 'AAPL', side: 'long', quantity: '120', avg_price: '190.10', mark_price: '189.55', unrealized_pnl: '-66.00', liquidation_price: '145.20' },
  ];
  for (const p of positions) push('portfolio', 'position:updated', p);
  push('portfolio', 'portfolio:updated', {
    total_value_usd: '125046.23',
    unrealized_pnl: '46.23',
    realized_pnl: '1287.40',
    total_heat: '6.42',
    available_capacity: '3.58',
    max_heat: '10.00',
  });
  push('portfolio', 'campaign:updated', { campaign_id: `${account}-s1-campaign`, risk_allocated: '3.10', risk_limit: '5.00', utilization: '62.00', positions_count: 2 });
  push('portfolio', 'campaign:updated', { campaign_id: `${account}-s2-campaign`, risk_allocated: '4.35', risk_limit: '5.00', utilization: '87.00', positions_count: 1 });
  const orders = [
    { symbol: 'BTC-USD', side: 'buy', order_type: 'limit', quantity: '0.2500', price: '41500.00', filled_quantity: '0.0000', status: 'open' },
    { symbol: 'SOL-USD', side: 'sell', order_type: 'limit', quantity: '40.00', price: '101.250', filled_quantity: '12.50', status: 'partially_filled' },
    { symbol: 'MSFT', side: 'buy', order_type: 'stop', quantity: '15', price: '418.00', filled_quantity: '0', status: 'open' },
    { symbol: 'ETH-USD', side: 'buy', order_type: 'limit', quantity: '1.500', price: '2231.00', filled_quantity: '0.000', status: 'pending' },
  ];
  orders.forEach((o, i) => push('orders', 'order:updated', { order_id: `ord-${account}-${i + 1}`, session_id: `${account}-s1`, created_at: iso(60_000 * (i + 1)), ...o }));
  const symbols = Object.keys(SYMBOL_PRICES);
  for (let i = 0; i < 14; i++) {
    const symbol = symbols[i % symbols.length]!;
    const pattern = PATTERNS[Math.floor(random() * PATTERNS.length)]!;
    const side = pattern === 'UTAD' ? 'sell' : 'buy';
    const entry = SYMBOL_PRICES[symbol]! * (1 + (random() - 0.5) * 0.01);
    const status = i < 6 ? 'pending' : i % 3 === 0 ? 'rejected' : 'executed';
    push('signals', 'signal:new', {
      id: `sig-${account}-${i + 1}`,
      symbol,
      pattern_type: pattern,
      confidence_score: 60 + Math.floor(random() * 38),
      status,
      session_id: `${account}-s1`,
      created_at: iso((14 - i) * 17_000),
      side,
      entry_price: fix(entry, dpOf(symbol)),
      stop_loss: fix(entry * (side === 'buy' ? 0.988 : 1.012), dpOf(symbol)),
      target_price: fix(entry * (side === 'buy' ? 1.024 : 0.976), dpOf(symbol)),
      quantity: symbol.includes('-') ? '0.250' : '25',
      risk_reward: '2.00',
      phase: 'C',
    });
  }
  for (let i = 0; i < 6; i++) {
    push('signals', 'pattern_detected', {
      id: `pat-${account}-${i + 1}`,
      symbol: symbols[i % symbols.length],
      pattern_type: PATTERNS[i % PATTERNS.length],
      confidence_score: 55 + i * 6,
      phase: ['A', 'B', 'C', 'D', 'E'][i % 5],
      test_confirmed: i % 2 === 0,
      detected_at: iso((6 - i) * 23_000),
    });
  }
  const states = ['MONITORING', 'SIGNAL_DETECTED', 'ENTRY_PENDING', 'POSITION_OPEN', 'EXITING'] as const;
  symbols.forEach((symbol, i) => {
    push('state_machines', 'instance_added', {
      instance_id: `${account}-s1:${symbol}`,
      session_id: `${account}-s1`,
      strategy: 'wyckoff',
      symbol,
      state: states[i % states.length],
      entered_at: iso(30_000 + i * 95_000),
      conditions_met: i === 0 ? 1 : 3,
      conditions_total: 3,
      reason: ['watching range', 'SPRING detected', 'entry order placed', 'entry filled', 'target reached'][i],
    });
  });
  symbols.forEach((symbol) => {
    const p = SYMBOL_PRICES[symbol]!;
    push('indicators', 'indicator:updated', { symbol, name: 'rsi_14', value: fix(30 + random() * 45, 2) });
    push('indicators', 'indicator:updated', { symbol, name: 'vwap', value: fix(p * (1 + (random() - 0.5) * 0.004), dpOf(symbol)) });
    push('indicators', 'indicator:updated', { symbol, name: 'pump_score', value: fix(random() * 10, 2) });
  });
  push('alerts', 'liquidation_alert', {
    id: `liq-${account}-1`,
    severity: 'warning',
    message: 'Margin ratio below 25%: consider reducing ETH-USD',
    symbol: 'ETH-USD',
    margin_ratio: '0.2231',
    liquidation_price: '2480.00',
    timestamp: iso(90_000),
  });
  push('alerts', 'reconciliation_mismatch', {
    id: `recon-${account}-1`,
    severity: 'warning',
    message: "Reconciliation: order quantity differs; corrected to the broker's state",
    order_id: `ord-${account}-2`,
    timestamp: iso(40_000),
  });
  return events;
}

/** Publishes events in chunks over HTTP; throws when the gateway refuses any. */
export async function publishAll(baseUrl: string, events: unknown[], chunk = 500): Promise<void> {
  for (let i = 0; i < events.length; i += chunk) {
    const res = await publish(baseUrl, events.slice(i, i + chunk));
    if (res.status !== 200) throw new Error(`publish failed (${res.status}): ${JSON.stringify(res.body).slice(0, 400)}`);
  }
}

/** Counts the page's WebSockets for its whole life, and the most that were open at once. */
export function countSockets(page: Page): { readonly count: number; readonly maxOpen: number; readonly urls: string[] } {
  const urls: string[] = [];
  let open = 0;
  let maxOpen = 0;
  page.on('websocket', (ws) => {
    urls.push(ws.url());
    maxOpen = Math.max(maxOpen, ++open);
    ws.on('close', () => open--);
  });
  return {
    get count() {
      return urls.length;
    },
    get maxOpen() {
      return maxOpen;
    },
    urls,
  };
}

/** Collects the page's console errors and uncaught exceptions. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}
