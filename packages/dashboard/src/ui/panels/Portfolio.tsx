import type { Campaign } from '@tradesync/protocol';
import { formatMoney, formatPercent, formatSigned, sign } from '../../core/format.js';
import { campaignUtilization, HEAT_WARNING_PERCENT, heatUtilization } from '../../core/notifications.js';
import { useData } from '../context.js';
import { Panel } from '../Panel.js';

const tone = (v: unknown) => (sign(v) > 0 ? 'up' : sign(v) < 0 ? 'down' : '');

export function PortfolioPanel() {
  const slice = useData((d) => d.portfolio);
  const p = slice.state.portfolio as Record<string, unknown>;
  const utilization = heatUtilization(slice.state.portfolio);
  const hot = utilization > HEAT_WARNING_PERCENT;
  const campaigns = Object.values(slice.state.campaigns);
  return (
    <Panel id="portfolio" title="Portfolio" updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <div className="kpis">
        <Kpi label="Equity" value={formatMoney(p.total_value_usd)} unit="USD" big testId="equity" />
        <Kpi label="Unrealized P&L" value={formatSigned(p.unrealized_pnl)} className={tone(p.unrealized_pnl)} />
        <Kpi label="Realized P&L" value={formatSigned(p.realized_pnl)} className={tone(p.realized_pnl)} />
        <Kpi label="Available capacity" value={formatPercent(p.available_capacity)} />
      </div>
      <div className={`heat${hot ? ' hot' : ''}`} data-testid="heat">
        <div className="heat-row">
          <span className="label">Heat</span>
          <span className="num">
            {formatPercent(p.total_heat)}
            {p.max_heat !== undefined ? <span className="muted"> / {formatPercent(p.max_heat)}</span> : null}
          </span>
          {hot && (
            <span className="badge badge-warn" role="note">
              ⚠ Heat above 80% of limit
            </span>
          )}
        </div>
        <div className="gauge" role="meter" aria-label="Portfolio heat" aria-valuemin={0} aria-valuemax={100} aria-valuenow={utilization}>
          <div className="gauge-fill" style={{ width: `${Math.min(100, utilization)}%` }} />
          <div className="gauge-mark" style={{ left: `${HEAT_WARNING_PERCENT}%` }} aria-hidden="true" />
        </div>
      </div>
      <table className="t compact">
        <caption className="sub">Campaigns</caption>
        <thead>
          <tr>
            <th>Campaign</th>
            <th className="num">Risk</th>
            <th className="num">Limit use</th>
            <th className="num">Pos</th>
          </tr>
        </thead>
        <tbody>
          {campaigns.length === 0 ? (
            <tr>
              <td colSpan={4} className="empty-cell">
                No campaigns
              </td>
            </tr>
          ) : (
            campaigns.map((c: Campaign) => {
              const util = campaignUtilization(c);
              return (
                <tr key={c.campaign_id}>
                  <td className="ellipsis" title={c.campaign_id}>
                    {shortId(c.campaign_id)}
                  </td>
                  <td className="num">{formatPercent(c.risk_allocated)}</td>
                  <td className={`num${util !== undefined && util > HEAT_WARNING_PERCENT ? ' warn' : ''}`}>{formatPercent((c as Record<string, unknown>).utilization)}</td>
                  <td className="num">{c.positions_count}</td>
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </Panel>
  );
}

function Kpi({ label, value, unit, className, big, testId }: { label: string; value: string; unit?: string; className?: string; big?: boolean; testId?: string }) {
  return (
    <div className={`kpi${big ? ' kpi-big' : ''}`}>
      <div className="label">{label}</div>
      <div className={`num value ${className ?? ''}`} data-testid={testId}>
        {value}
        {unit && <span className="unit">{unit}</span>}
      </div>
    </div>
  );
}

/** `demo-abc123-s1-campaign` → `s1-campaign`-ish: the tail that differs. */
function shortId(id: string): string {
  return id.length > 22 ? `…${id.slice(-20)}` : id;
}
