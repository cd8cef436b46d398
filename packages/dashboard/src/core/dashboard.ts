import { getClient, httpBase, reportClientMetrics, type ClientMetricsReporter, type ClientOptions, type TradeSyncClient } from '@tradesync/client';
import { isValidAccount } from '@tradesync/protocol';
import { Desk } from './desk.js';
import { browserFrame } from './frame.js';
import { createLogShipper, type LogShipper } from './logs.js';
import { createNotifications, type ToastSpec } from './notifications.js';
import { ChartSeries } from './series.js';
import { ACCOUNTS, createStores, loadSettings, saveSettings, type PanelId, type Settings, type Stores } from './stores.js';
import { createThrottle } from './throttle.js';

/**
 * The desk redraws at most every 33 ms (30 times a second; every other frame at 60 Hz):
 * numbers are read no faster than that, and at a thousand events a second the frames
 * in between stay free for input and GC.
 */
const FRAME_INTERVAL_MS = 33;

/**
 * Puts the page together, outside React: one client for the page (the SDK's shared
 * `getClient`, so however many panels there are, there is one socket), the stores,
 * the desk that feeds them, the logger and the toasts.
 *
 * URL parameters (for operators and tests): `account`, `token`, `debug` (debug lines
 * in the console), `probe` (keep event-to-screen latencies on `window` for the
 * benchmark), `requestTimeoutMs` (a short one lets a test provoke a sync failure),
 * `metricsEveryMs` (how often client metrics are posted).
 */
export interface Dashboard {
  /** The page's one client; the React tree gets it from `TradeSyncProvider` (@tradesync/react). */
  readonly client: TradeSyncClient;
  readonly stores: Stores;
  readonly desk: Desk;
  readonly chart: ChartSeries;
  readonly logger: LogShipper;
  /** Reconnects, held events and toasts, posted to `POST /api/client-metrics` every 15 s. */
  readonly metrics: ClientMetricsReporter;
  readonly settings: { update(patch: Partial<Settings>): void; setPanel(id: PanelId, open: boolean): void };
}

export interface DashboardEnv {
  readonly location: Pick<Location, 'protocol' | 'host' | 'search'>;
  readonly storage: Storage | undefined;
  readonly showToast: (toast: ToastSpec, openSignal: (id: string) => void) => void;
  readonly onAccountChange?: (account: string) => void;
  readonly probe?: { latencies: number[] };
}

/**
 * The account of `?account=`: any name the protocol accepts (not only the header's
 * list, so operators can open others), else the first. A malformed one would make
 * `subscribe` throw inside `desk.start()` and leave the page blank.
 */
export function accountFrom(requested: string | null): string {
  return isValidAccount(requested) ? requested : ACCOUNTS[0];
}

export function createDashboard(env: DashboardEnv): Dashboard {
  const params = new URLSearchParams(env.location.search);
  const wsUrl = `${env.location.protocol === 'https:' ? 'wss' : 'ws'}://${env.location.host}/ws`;
  const base = httpBase(wsUrl);
  const token = params.get('token');
  const logger = createLogShipper({ endpoint: `${base}/api/logs`, debugToConsole: params.has('debug'), ...(token ? { token } : {}) });
  const requestTimeoutMs = Number(params.get('requestTimeoutMs'));
  const metricsEveryMs = Number(params.get('metricsEveryMs'));
  const options: Omit<ClientOptions, 'url'> = {
    logger,
    ...(Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0 ? { requestTimeoutMs } : {}),
    ...(token ? { token } : {}),
  };
  const client = getClient(wsUrl, options);

  const account = accountFrom(params.get('account'));
  const stores = createStores({ account, settings: loadSettings(env.storage), now: Date.now() });
  const chart = new ChartSeries();
  // The toasts' "View details" needs the desk, which needs the notifications: tie the knot late.
  const late: { desk?: Desk } = {};
  const metrics = reportClientMetrics(client, `${base}/api/client-metrics`, {
    ...(token ? { token } : {}),
    ...(Number.isFinite(metricsEveryMs) && metricsEveryMs > 0 ? { everyMs: metricsEveryMs } : {}),
  });
  const notifications = createNotifications({
    throttle: createThrottle(),
    enabled: () => stores.settings.getState().toasts,
    show: (toast) => {
      env.showToast(toast, (id) => late.desk?.selectSignal(id));
      metrics.toastShown();
    },
  });
  const desk = new Desk({
    client,
    stores,
    notifications,
    chart,
    requestFrame: browserFrame,
    pacing: { minIntervalMs: FRAME_INTERVAL_MS, now: () => performance.now() },
    // The chart's history over REST: the SDK's `readEvents` (token, URL and body validation are its business).
    events: client,
    logger,
    ...(env.probe ? { probe: env.probe } : {}),
  });
  late.desk = desk;
  desk.start();

  stores.settings.subscribe((s) => saveSettings(env.storage, s));
  if (env.onAccountChange) {
    const notify = env.onAccountChange;
    stores.data.subscribe((d, prev) => {
      if (d.account !== prev.account) notify(d.account);
    });
  }
  return {
    client,
    stores,
    desk,
    chart,
    logger,
    metrics,
    settings: {
      update: (patch) => stores.settings.setState(patch),
      setPanel: (id, open) => stores.settings.setState((s) => ({ panels: { ...s.panels, [id]: open } })),
    },
  };
}
