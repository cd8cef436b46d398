import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { TradeSyncProvider } from '@tradesync/react';
import { createDashboard } from './core/dashboard.js';
import { App } from './ui/App.js';
import { Ctx } from './ui/context.js';
import { showToast } from './ui/toasts.js';
import './styles.css';

declare global {
  interface Window {
    __tradesyncProbe?: { latencies: number[] };
  }
}

const params = new URLSearchParams(location.search);
if (params.has('probe')) window.__tradesyncProbe = { latencies: [] };

let storage: Storage | undefined;
try {
  storage = window.localStorage;
} catch {
  storage = undefined;
}

const dashboard = createDashboard({
  location,
  storage,
  showToast,
  ...(window.__tradesyncProbe ? { probe: window.__tradesyncProbe } : {}),
  onAccountChange: (account) => {
    const url = new URL(location.href);
    url.searchParams.set('account', account);
    history.replaceState(null, '', url);
  },
});
document.documentElement.dataset.theme = dashboard.stores.settings.getState().theme;
// The last WARN/ERROR lines and client metrics leave with the page.
addEventListener('pagehide', () => {
  void dashboard.logger.flush({ keepalive: true });
  void dashboard.metrics.flush();
});

const root = document.getElementById('root');
if (!root) throw new Error('no #root element');
createRoot(root).render(
  <StrictMode>
    <TradeSyncProvider client={dashboard.client}>
      <Ctx.Provider value={dashboard}>
        <App />
      </Ctx.Provider>
    </TradeSyncProvider>
  </StrictMode>,
);
