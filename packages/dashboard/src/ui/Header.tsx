import { describeStatus } from '@tradesync/client';
import { formatPrice, formatTime } from '../core/format.js';
import { ACCOUNTS, PANELS, SYMBOLS } from '../core/stores.js';
import { useConnectionStatus, useStream, useTradeSync } from '@tradesync/react';
import type { MarketState } from '@tradesync/protocol';
import { READABLE_RATE } from '../core/stream-feed.js';
import { useConnection, useData, useDesk, useLive, useSettings } from './context.js';

export function Header() {
  return (
    <header className="topbar">
      <div className="brand" aria-label="TradeSync">
        <span className="logo" aria-hidden="true">◆</span> TradeSync
      </div>
      <AccountSwitcher />
      <Ticker />
      <div className="spacer" />
      <ConnectionStatus />
      <ForceSyncButton />
      <SettingsMenu />
    </header>
  );
}

function AccountSwitcher() {
  const { desk } = useDesk();
  const account = useData((d) => d.account);
  return (
    <label className="account">
      <span className="label">Account</span>
      <select value={account} onChange={(e) => desk.setAccount(e.target.value)} aria-label="Account">
        {ACCOUNTS.map((a) => (
          <option key={a} value={a}>
            {a}
          </option>
        ))}
      </select>
    </label>
  );
}

function Ticker() {
  const { settings } = useDesk();
  const chartSymbol = useSettings((s) => s.chartSymbol);
  return (
    <ul className="ticker" aria-label="Market prices">
      {SYMBOLS.map((symbol) => (
        <li key={symbol}>
          <button type="button" className={symbol === chartSymbol ? 'tick active' : 'tick'} onClick={() => settings.update({ chartSymbol: symbol })} aria-label={`Chart ${symbol}`}>
            <span className="sym">{symbol}</span>
            <LastPrice symbol={symbol} />
          </button>
        </li>
      ))}
    </ul>
  );
}

/** One symbol's last price, straight from its stream (shared with the desk's subscription, at the same rate). */
function LastPrice({ symbol }: { symbol: string }) {
  const price = useStream<MarketState, string | undefined>(`market:${symbol}`, { selector: (s) => s.last?.price, maxRate: READABLE_RATE });
  return <span className="num">{formatPrice(price)}</span>;
}

function ConnectionStatus() {
  const client = useTradeSync();
  const status = useConnectionStatus();
  // Ticks once a second: the countdown moves, and the details the client updates quietly show.
  const now = useConnection((c) => c.now);
  const text = describeStatus(status);
  const tone = status.state === 'connected' ? 'ok' : status.state === 'failed' || status.state === 'disconnected' ? 'bad' : 'wait';
  const retryIn = status.nextRetryAt === null ? null : Math.max(0, Math.ceil((status.nextRetryAt - Math.max(now, Date.now())) / 1000));
  const down = status.state === 'failed' || status.state === 'disconnected';
  return (
    <div className={`conn conn-${tone}`}>
      <div className="conn-pill" tabIndex={0} aria-describedby="conn-details" data-testid="connection-status">
        <span className="dot" aria-hidden="true" />
        <span className="conn-text" role="status" aria-live="polite" aria-atomic="true">
          {text}
        </span>
        {retryIn !== null && <span className="countdown">Retrying in {retryIn}s…</span>}
        <div className="tooltip" id="conn-details" role="tooltip">
          <dl>
            <dt>connection_id</dt>
            <dd data-testid="connection-id">{status.connectionId ?? '—'}</dd>
            <dt>last message</dt>
            <dd>{status.lastMessageAt === null ? '—' : `${formatTime(status.lastMessageAt)} UTC`}</dd>
            <dt>sequence</dt>
            <dd>{status.lastSequenceNumber ?? '—'}</dd>
            <dt>gateway</dt>
            <dd>{status.url}</dd>
          </dl>
        </div>
      </div>
      {(down || status.state === 'reconnecting') && (
        <button type="button" className="btn btn-small" onClick={() => client.reconnectNow()}>
          Reconnect now
        </button>
      )}
    </div>
  );
}

function ForceSyncButton() {
  const { desk } = useDesk();
  const busy = useConnection((c) => c.forceSyncing);
  const live = useLive();
  return (
    <button type="button" className="btn" onClick={() => desk.forceSync()} disabled={busy || !live} title="Replace every panel's data with a fresh snapshot">
      {busy ? 'Syncing…' : 'Force Sync'}
    </button>
  );
}

function SettingsMenu() {
  const { settings } = useDesk();
  const current = useSettings((s) => s);
  return (
    <details className="menu">
      <summary className="btn">View</summary>
      <div className="menu-body" role="group" aria-label="View settings">
        <fieldset>
          <legend>Panels</legend>
          {PANELS.map((p) => (
            <label key={p.id} className="check">
              <input type="checkbox" checked={current.panels[p.id]} onChange={(e) => settings.setPanel(p.id, e.target.checked)} />
              {p.title}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Preferences</legend>
          <label className="check">
            <input type="checkbox" checked={current.toasts} onChange={(e) => settings.update({ toasts: e.target.checked })} data-testid="toasts-toggle" />
            Toast notifications
          </label>
          <label className="check">
            <input type="checkbox" checked={current.theme === 'light'} onChange={(e) => settings.update({ theme: e.target.checked ? 'light' : 'dark' })} />
            Light theme
          </label>
        </fieldset>
      </div>
    </details>
  );
}
