import { useEffect, useRef } from 'react';
import { formatPrice, formatQty, formatTime } from '../../core/format.js';
import { useData, useDesk, useUi } from '../context.js';

const FIELDS: ReadonlyArray<[string, string, (v: unknown) => string]> = [
  ['symbol', 'Symbol', String],
  ['pattern_type', 'Pattern', String],
  ['phase', 'Phase', String],
  ['side', 'Side', String],
  ['confidence_score', 'Confidence', (v) => `${String(v)}%`],
  ['entry_price', 'Entry', formatPrice],
  ['stop_loss', 'Stop', formatPrice],
  ['target_price', 'Target', formatPrice],
  ['quantity', 'Quantity', formatQty],
  ['risk_reward', 'Reward / risk', String],
  ['status', 'Status', String],
  ['created_at', 'Raised', (v) => `${formatTime(v as string)} UTC`],
  ['expires_at', 'Expires', (v) => `${formatTime(v as string)} UTC`],
  ['session_id', 'Session', String],
  ['id', 'Id', String],
];

/** The "View details" of a signal, as a modal dialog (Esc closes it). */
export function SignalDetails() {
  const { desk } = useDesk();
  const id = useUi((u) => u.selectedSignal);
  const signal = useData((d) => (id ? d.signals.state.signals[id] : undefined));
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = dialog.current;
    if (!el) return;
    if (id && !el.open) el.showModal();
    if (!id && el.open) el.close();
  }, [id]);
  const s = signal as Record<string, unknown> | undefined;
  return (
    <dialog ref={dialog} className="details" onClose={() => desk.selectSignal(null)} aria-labelledby="signal-details-title" data-testid="signal-details">
      <h2 id="signal-details-title">Signal {s ? `${String(s.symbol)} · ${String(s.pattern_type)}` : ''}</h2>
      {s ? (
        <dl>
          {FIELDS.filter(([k]) => s[k] !== undefined && s[k] !== null).map(([k, label, fmt]) => (
            <div key={k}>
              <dt>{label}</dt>
              <dd className="num">{fmt(s[k])}</dd>
            </div>
          ))}
        </dl>
      ) : (
        <p className="muted">This signal is no longer in the feed.</p>
      )}
      <div className="dialog-actions">
        {s?.status === 'pending' && !s.pending_action && id && (
          <>
            <button type="button" className="btn btn-go" onClick={() => desk.executeSignal(id)}>
              Execute
            </button>
            <button type="button" className="btn" onClick={() => desk.rejectSignal(id)}>
              Reject
            </button>
          </>
        )}
        <button type="button" className="btn" onClick={() => desk.selectSignal(null)} autoFocus>
          Close
        </button>
      </div>
    </dialog>
  );
}
