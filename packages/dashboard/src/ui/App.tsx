import { useLayoutEffect } from 'react';
import { Toaster } from 'sonner';
import type { PanelId } from '../core/stores.js';
import { useData, useDesk, useSettings } from './context.js';
import { Header } from './Header.js';
import { ChartPanel } from './panels/Chart.js';
import { DebugPanel } from './panels/Debug.js';
import { AlertsPanel, IndicatorsPanel, PatternsPanel, StrategiesPanel } from './panels/Lists.js';
import { PortfolioPanel } from './panels/Portfolio.js';
import { SignalDetails } from './panels/SignalDetails.js';
import { SignalsPanel } from './panels/Signals.js';
import { BalancesPanel, OrdersPanel, PositionsPanel } from './panels/Tables.js';
import { SyncBanner } from './SyncBanner.js';

const LAYOUT: ReadonlyArray<{ id: PanelId; Component: () => React.JSX.Element }> = [
  { id: 'portfolio', Component: PortfolioPanel },
  { id: 'chart', Component: ChartPanel },
  { id: 'positions', Component: PositionsPanel },
  { id: 'orders', Component: OrdersPanel },
  { id: 'signals', Component: SignalsPanel },
  { id: 'strategies', Component: StrategiesPanel },
  { id: 'alerts', Component: AlertsPanel },
  { id: 'balances', Component: BalancesPanel },
  { id: 'indicators', Component: IndicatorsPanel },
  { id: 'patterns', Component: PatternsPanel },
  { id: 'debug', Component: DebugPanel },
];

/** Top right, below the bar and a sync banner: a toast never covers Force Sync, View or Reconnect now. */
const TOAST_OFFSET = { top: 84, right: 12 };

export function App() {
  const panels = useSettings((s) => s.panels);
  const theme = useSettings((s) => s.theme);
  useLayoutEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return (
    <div className="app">
      <a className="skip" href="#desk">
        Skip to panels
      </a>
      <Header />
      <SyncBanner />
      <main id="desk" className="desk">
        {LAYOUT.filter((p) => panels[p.id]).map(({ id, Component }) => (
          <Component key={id} />
        ))}
      </main>
      <SignalDetails />
      <Toaster position="top-right" offset={TOAST_OFFSET} duration={5000} theme={theme} closeButton richColors={false} toastOptions={{ className: 'toast' }} />
      <RenderProbe />
    </div>
  );
}

/** Tells the desk when a frame of data is on screen (event-to-screen latency). */
function RenderProbe() {
  const { desk } = useDesk();
  const frame = useData((d) => d.frame);
  useLayoutEffect(() => {
    desk.committed(frame);
  }, [desk, frame]);
  return null;
}
