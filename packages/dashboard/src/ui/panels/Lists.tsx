import { memo } from 'react';
import type { Instance, Pattern, SignalsState } from '@tradesync/protocol';
import { formatAge, formatDecimal, formatPrice, formatTime } from '../../core/format.js';
import { useConnection, useData } from '../context.js';
import { Panel } from '../Panel.js';
import { EmptyRow } from './Tables.js';

export function PatternsPanel() {
  // The signals stream changes every frame, its patterns seldom: select them alone, and
  // the rows render only when they changed (the header's age still follows the stream).
  const updatedAt = useData((d) => d.signals.updatedAt);
  const synced = useData((d) => d.signals.synced);
  const stale = useData((d) => d.signals.stale);
  const heardAt = useData((d) => d.signals.heardAt);
  const map = useData((d) => d.signals.state.patterns);
  return (
    <Panel id="patterns" title="Patterns" updatedAt={updatedAt} synced={synced} freshness={{ stale, heardAt }}>
      <PatternsTable patterns={map} />
    </Panel>
  );
}

const PatternsTable = memo(function PatternsTable({ patterns: map }: { patterns: SignalsState['patterns'] }) {
  const patterns = (Object.values(map) as Array<Pattern & { detected_at?: string }>).sort((a, b) =>
    String(b.detected_at ?? '').localeCompare(String(a.detected_at ?? '')),
  );
  return (
    <>
      <div className="scroll">
        <table className="t" data-testid="patterns-table">
          <thead>
            <tr>
              <th>Time</th>
              <th>Symbol</th>
              <th>Pattern</th>
              <th>Phase</th>
              <th className="num">Conf.</th>
              <th>Test</th>
            </tr>
          </thead>
          <tbody>
            {patterns.length === 0 && <EmptyRow cols={6} text="No patterns detected" />}
            {patterns.slice(0, 100).map((p) => (
              <tr key={p.id} data-pattern-id={p.id}>
                <td className="num muted tl">{formatTime(p.detected_at)}</td>
                <td className="sym">{p.symbol}</td>
                <td>{p.pattern_type}</td>
                <td>{p.phase}</td>
                <td className="num">{p.confidence_score}</td>
                <td>{p.test_confirmed ? <span className="up">✓ confirmed</span> : <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
});

type InstanceRow = Instance & { entered_at?: string; conditions_met?: number; conditions_total?: number; progress?: string; reason?: string };

export function StrategiesPanel() {
  const slice = useData((d) => d.state_machines);
  const now = useConnection((c) => c.now);
  const instances = (Object.values(slice.state.instances) as InstanceRow[]).sort((a, b) => a.symbol.localeCompare(b.symbol) || a.instance_id.localeCompare(b.instance_id));
  return (
    <Panel id="strategies" title={`Strategy state machines · ${instances.length}`} updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <div className="scroll">
        <table className="t" data-testid="strategies-table">
          <thead>
            <tr>
              <th>Symbol</th>
              <th>Strategy</th>
              <th>State</th>
              <th className="num">In state</th>
              <th>Conditions</th>
              <th>Last change</th>
            </tr>
          </thead>
          <tbody>
            {instances.length === 0 && <EmptyRow cols={6} text="No strategy instances" />}
            {instances.map((i) => {
              const met = typeof i.conditions_met === 'number' ? i.conditions_met : 0;
              const total = typeof i.conditions_total === 'number' && i.conditions_total > 0 ? i.conditions_total : 0;
              const entered = i.entered_at ? Date.parse(i.entered_at) : NaN;
              return (
                <tr key={i.instance_id} data-instance-id={i.instance_id}>
                  <td className="sym">{i.symbol}</td>
                  <td className="muted">{i.strategy}</td>
                  <td>
                    <span className={`state state-${i.state}`}>{i.state.replace('_', ' ')}</span>
                  </td>
                  <td className="num">{Number.isNaN(entered) ? '—' : formatAge(now - entered)}</td>
                  <td>
                    {total > 0 ? (
                      <span className="progress" role="meter" aria-label={`${met} of ${total} conditions`} aria-valuemin={0} aria-valuemax={total} aria-valuenow={met}>
                        {Array.from({ length: total }, (_, k) => (
                          <span key={k} className={k < met ? 'pip on' : 'pip'} />
                        ))}
                        <span className="num muted">
                          {met}/{total}
                        </span>
                      </span>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td className="muted ellipsis" title={i.reason}>
                    {i.reason ?? ''}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

const INDICATOR_ORDER = ['ema_20', 'rsi_14', 'vwap', 'pump_score'];

export function IndicatorsPanel() {
  const slice = useData((d) => d.indicators);
  const bySymbol = slice.state.indicators;
  const symbols = Object.keys(bySymbol).sort();
  const names = [...new Set(symbols.flatMap((s) => Object.keys(bySymbol[s] ?? {})))].sort(
    (a, b) => (INDICATOR_ORDER.indexOf(a) + 1 || 99) - (INDICATOR_ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b),
  );
  return (
    <Panel id="indicators" title="Indicators" updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <table className="t" data-testid="indicators-table">
        <thead>
          <tr>
            <th>Symbol</th>
            {names.map((n) => (
              <th key={n} className="num">
                {n.toUpperCase().replace('_', ' ')}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {symbols.length === 0 && <EmptyRow cols={1 + Math.max(names.length, 1)} text="No indicator values" />}
          {symbols.map((s) => (
            <tr key={s} data-symbol={s}>
              <td className="sym">{s}</td>
              {names.map((n) => {
                const v = bySymbol[s]?.[n];
                const rsi = n.startsWith('rsi') ? Number(v) : NaN;
                return (
                  <td key={n} className={`num${rsi > 70 ? ' down' : rsi < 30 ? ' up' : ''}`}>
                    {n.startsWith('rsi') || n.includes('score') ? formatDecimal(v, 1) : formatPrice(v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function AlertsPanel() {
  const slice = useData((d) => d.alerts);
  const alerts = [...slice.state.alerts].reverse();
  return (
    <Panel id="alerts" title={`Alerts · ${alerts.length}`} updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <ul className="alerts" data-testid="alerts-list">
        {alerts.length === 0 && <li className="empty">No alerts</li>}
        {alerts.slice(0, 100).map((a) => {
          const extra = a as Record<string, unknown>;
          const kind = a.alert_type === 'liquidation_alert' ? 'Liquidation' : a.alert_type === 'reconciliation_mismatch' ? 'Reconciliation' : a.alert_type;
          return (
            <li key={a.id} className={`alert sev-${a.severity ?? 'info'}`} data-alert-id={a.id}>
              <span className="num muted tl">{formatTime(extra.timestamp as string | undefined)}</span>
              <span className="alert-kind">{kind}</span>
              <span className="alert-msg">
                {a.message ?? ''}
                {typeof extra.symbol === 'string' ? <span className="muted"> · {extra.symbol}</span> : null}
                {extra.margin_ratio !== undefined ? <span className="muted"> · margin {formatDecimal(extra.margin_ratio, 4)}</span> : null}
                {extra.liquidation_price !== undefined ? <span className="muted"> · liq {formatPrice(extra.liquidation_price)}</span> : null}
              </span>
            </li>
          );
        })}
      </ul>
    </Panel>
  );
}
