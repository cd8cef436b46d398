import { formatAge, formatTime } from '../../core/format.js';
import { useConnection, useDebug } from '../context.js';
import { Panel } from '../Panel.js';

export function DebugPanel() {
  const d = useDebug((s) => s);
  const now = useConnection((c) => c.now);
  return (
    <Panel id="debug" title="Debug" updatedAt={now}>
      <div className="debug">
        <div className="kpis">
          <div className="kpi">
            <div className="label">Events/s</div>
            <div className="num value" data-testid="events-per-second">
              {d.eventsPerSecond}
            </div>
          </div>
          <div className="kpi">
            <div className="label">Wire latency (p50)</div>
            <div className="num value">{d.wireLatencyMs === null ? '—' : `${d.wireLatencyMs} ms`}</div>
          </div>
          <div className="kpi">
            <div className="label">Event → screen (p50)</div>
            <div className="num value">{d.screenLatencyMs === null ? '—' : `${d.screenLatencyMs} ms`}</div>
          </div>
          <div className="kpi">
            <div className="label">Frames</div>
            <div className="num value">{d.frames}</div>
          </div>
        </div>
        <div className="debug-cols">
          <table className="t compact">
            <caption className="sub">Offsets per stream</caption>
            <thead>
              <tr>
                <th>Stream</th>
                <th>Epoch</th>
                <th className="num">Offset</th>
                <th>Synced</th>
                <th>Verified</th>
              </tr>
            </thead>
            <tbody>
              {d.offsets.map((o) => (
                <tr key={o.stream} data-stream={o.stream}>
                  <td className="sym">{o.stream}</td>
                  <td className="muted ellipsis">{o.epoch?.slice(0, 10) ?? '—'}</td>
                  <td className="num">{o.offset}</td>
                  <td>{o.synced ? '✓' : '…'}</td>
                  <td className={o.stale ? 'warn' : 'muted'} data-verified>
                    {o.stale ? 'stale · ' : ''}
                    {o.verifiedOffset === null || o.verifiedAt === null ? 'not yet' : `at #${o.verifiedOffset}, ${now - o.verifiedAt < 1000 ? 'just now' : `${formatAge(now - o.verifiedAt)} ago`}`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="messages">
            <div className="sub">Last {d.messages.length} messages</div>
            <ol className="msglist" data-testid="debug-messages" reversed>
              {[...d.messages].reverse().map((m, i) => (
                <li key={`${m.at}-${i}`}>
                  <span className="num muted tl">{formatTime(m.at)}</span> <span className="msg-type">{m.type}</span>
                  {m.stream ? <span className="muted"> {m.stream}</span> : null}
                  {m.offset !== undefined ? <span className="num muted">#{m.offset}</span> : null}
                  <code>{JSON.stringify(m.raw).slice(0, 160)}</code>
                </li>
              ))}
            </ol>
          </div>
        </div>
      </div>
    </Panel>
  );
}
