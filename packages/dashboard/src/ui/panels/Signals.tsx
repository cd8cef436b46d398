import { memo, useMemo, useRef, useState } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { Signal } from '@tradesync/protocol';
import { formatPrice, formatQty, formatTime } from '../../core/format.js';
import { createSortedView } from '../../core/sorted.js';
import type { CommandMark } from '../../core/stores.js';
import { useData, useDesk, useUi } from '../context.js';
import { Panel } from '../Panel.js';

/** Past this many rows the list renders only what is on screen. */
const VIRTUALIZE_ABOVE = 100;
const ROW_HEIGHT = 26;

type Row = Signal & { readonly pending_action?: string; readonly created_at?: string; readonly [key: string]: unknown };

export function SignalsPanel() {
  const slice = useData((d) => d.signals);
  const commands = useUi((u) => u.commands);
  // Incremental: each frame brings a few new signals, not a new list of a thousand to sort.
  const [view] = useState(() => createSortedView<Row>(newestFirst, (s) => s.id));
  const signals = view(slice.state.signals);
  const pending = useMemo(() => signals.filter((s) => s.status === 'pending').length, [signals]);
  return (
    <Panel
      id="signals"
      title="Signals"
      updatedAt={slice.updatedAt}
      synced={slice.synced}
      freshness={slice}
      tools={
        <span className="head-stats">
          <span className="num">{signals.length}</span> total · <span className="num">{pending}</span> pending
        </span>
      }
    >
      <div className="srow shead" role="row">
        <span role="columnheader">Time</span>
        <span role="columnheader">Symbol</span>
        <span role="columnheader">Pattern</span>
        <span role="columnheader">Side</span>
        <span role="columnheader" className="num">
          Conf.
        </span>
        <span role="columnheader" className="num">
          Entry
        </span>
        <span role="columnheader" className="num">
          Stop
        </span>
        <span role="columnheader" className="num">
          Target
        </span>
        <span role="columnheader" className="num">
          Qty
        </span>
        <span role="columnheader">Status</span>
        <span role="columnheader" className="sr-only">
          Actions
        </span>
      </div>
      {signals.length > VIRTUALIZE_ABOVE ? <VirtualList signals={signals} commands={commands} /> : <PlainList signals={signals} commands={commands} />}
    </Panel>
  );
}

function PlainList({ signals, commands }: { signals: readonly Row[]; commands: Readonly<Record<string, CommandMark>> }) {
  return (
    <div className="slist" role="rowgroup" data-testid="signals-list" data-virtual="false">
      {signals.length === 0 && <div className="empty">No signals yet</div>}
      {signals.map((s) => (
        <SignalRow key={s.id} signal={s} mark={commands[s.id]} />
      ))}
    </div>
  );
}

function VirtualList({ signals, commands }: { signals: readonly Row[]; commands: Readonly<Record<string, CommandMark>> }) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: signals.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 6,
    getItemKey: (index) => signals[index]?.id ?? index,
  });
  return (
    <div className="slist" ref={scroller} role="rowgroup" data-testid="signals-list" data-virtual="true" data-count={signals.length}>
      <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
        {virtualizer.getVirtualItems().map((item) => {
          const s = signals[item.index];
          if (!s) return null;
          return (
            <div key={item.key} className="vrow" style={{ transform: `translateY(${item.start}px)` }}>
              <SignalRow signal={s} mark={commands[s.id]} />
            </div>
          );
        })}
      </div>
    </div>
  );
}

/** Newest first; ids break ties so the order is total and stable. Plain comparisons: ISO times sort as strings. */
function newestFirst(a: Row, b: Row): number {
  const ka = String(a.created_at ?? '');
  const kb = String(b.created_at ?? '');
  if (ka !== kb) return ka < kb ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Rows whose signal and command did not change are not rendered again. */
const SignalRow = memo(function SignalRow({ signal: s, mark }: { signal: Row; mark: CommandMark | undefined }) {
  const { desk } = useDesk();
  const pendingAction = typeof s.pending_action === 'string' ? s.pending_action : undefined;
  const actionable = s.status === 'pending' && !pendingAction;
  const side = typeof s.side === 'string' ? s.side : '';
  const statusText = pendingAction === 'execute' ? 'executing…' : pendingAction === 'reject' ? 'rejecting…' : s.status;
  const failed = mark?.phase === 'rolled_back' ? mark : undefined;
  return (
    <div className={`srow${pendingAction ? ' pending' : ''} st-${s.status}`} role="row" data-signal-id={s.id} data-status={pendingAction ? `pending-${pendingAction}` : s.status}>
      <span className="num muted tl">{formatTime(s.created_at)}</span>
      <span className="sym">
        <button type="button" className="link" onClick={() => desk.selectSignal(s.id)} aria-label={`Details of signal ${s.symbol} ${s.pattern_type}`}>
          {s.symbol}
        </button>
      </span>
      <span>{s.pattern_type}</span>
      <span className={side === 'buy' ? 'up' : side === 'sell' ? 'down' : ''}>{side}</span>
      <span className="num conf">
        <span className="conf-track" aria-hidden="true">
          <span className="conf-bar" style={{ width: `${Math.max(0, Math.min(100, s.confidence_score))}%` }} />
        </span>
        {s.confidence_score}
      </span>
      <span className="num">{formatPrice(s.entry_price)}</span>
      <span className="num muted">{formatPrice(s.stop_loss)}</span>
      <span className="num muted">{formatPrice(s.target_price)}</span>
      <span className="num">{formatQty(s.quantity)}</span>
      <span className="status-cell">
        <span className={`badge badge-${pendingAction ? 'pending' : s.status}`} data-testid="signal-status">
          {statusText}
        </span>
        {failed && (
          <span className="row-error" role="alert" title={failed.message}>
            {failed.action === 'reject_signal' ? 'Reject' : 'Execute'} failed: {failed.message}
          </span>
        )}
      </span>
      <span className="actions">
        {actionable && (
          <>
            <button type="button" className="btn btn-small btn-go" onClick={() => desk.executeSignal(s.id)} aria-label={`Execute signal ${s.symbol} ${s.pattern_type}`}>
              Execute
            </button>
            <button type="button" className="btn btn-small" onClick={() => desk.rejectSignal(s.id)} aria-label={`Reject signal ${s.symbol} ${s.pattern_type}`}>
              Reject
            </button>
          </>
        )}
      </span>
    </div>
  );
});
