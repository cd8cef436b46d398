import { memo, useRef, useState } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { createSortedView } from '../../core/sorted.js';
import type { Balance, Order, Position } from '@tradesync/protocol';
import type { CommandMark } from '../../core/stores.js';
import { formatMoney, formatPrice, formatQty, formatSigned, formatTime, sign } from '../../core/format.js';
import { useData, useDesk, useUi } from '../context.js';
import { Panel } from '../Panel.js';

const tone = (v: unknown) => (sign(v) > 0 ? 'up' : sign(v) < 0 ? 'down' : '');

export function BalancesPanel() {
  const slice = useData((d) => d.portfolio);
  const balances = Object.values(slice.state.balances).sort((a: Balance, b: Balance) => a.currency.localeCompare(b.currency));
  return (
    <Panel id="balances" title="Balances" updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <table className="t" data-testid="balances-table">
        <thead>
          <tr>
            <th>Ccy</th>
            <th className="num">Total</th>
            <th className="num">Available</th>
            <th className="num">Reserved</th>
          </tr>
        </thead>
        <tbody>
          {balances.length === 0 && <EmptyRow cols={4} text="No balances" />}
          {balances.map((b) => (
            <tr key={b.currency} data-currency={b.currency}>
              <td>{b.currency}</td>
              <td className="num">{formatMoney(b.total)}</td>
              <td className="num">{formatMoney(b.available)}</td>
              <td className="num">{formatMoney(b.reserved)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function PositionsPanel() {
  const slice = useData((d) => d.portfolio);
  const positions = Object.values(slice.state.positions).sort((a: Position, b: Position) => a.symbol.localeCompare(b.symbol));
  return (
    <Panel id="positions" title={`Positions · ${positions.length}`} updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      <table className="t" data-testid="positions-table">
        <thead>
          <tr>
            <th>Symbol</th>
            <th>Side</th>
            <th className="num">Qty</th>
            <th className="num">Avg</th>
            <th className="num">Mark</th>
            <th className="num">Liq.</th>
            <th className="num">Unreal. P&L</th>
          </tr>
        </thead>
        <tbody>
          {positions.length === 0 && <EmptyRow cols={7} text="No open positions" />}
          {positions.map((p) => {
            const extra = p as Record<string, unknown>;
            return (
              <tr key={p.symbol} data-symbol={p.symbol} data-quantity={p.quantity}>
                <td className="sym">{p.symbol}</td>
                <td className={p.side === 'long' ? 'up' : 'down'}>{p.side}</td>
                <td className="num">{formatQty(p.quantity)}</td>
                <td className="num">{formatPrice(p.avg_price)}</td>
                <td className="num">{formatPrice(p.mark_price)}</td>
                <td className="num muted">{formatPrice(extra.liquidation_price)}</td>
                <td className={`num ${tone(p.unrealized_pnl)}`}>{formatSigned(p.unrealized_pnl)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Panel>
  );
}

export function OrdersPanel() {
  const slice = useData((d) => d.orders);
  const commands = useUi((u) => u.commands);
  const [view] = useState(() => createSortedView<Order>(newestOrderFirst, (o) => o.order_id));
  const orders = view(slice.state.orders);
  return (
    <Panel id="orders" title={`Open orders · ${orders.length}`} updatedAt={slice.updatedAt} synced={slice.synced} freshness={slice}>
      {orders.length > ORDERS_VIRTUALIZE_ABOVE ? <VirtualOrders orders={orders} commands={commands} /> : <OrdersTable orders={orders} commands={commands} />}
    </Panel>
  );
}

const ORDER_COLUMNS = (
  <thead>
    <tr>
      <th>Time</th>
      <th>Symbol</th>
      <th>Side</th>
      <th>Type</th>
      <th className="num">Qty</th>
      <th className="num">Filled</th>
      <th className="num">Price</th>
      <th>Status</th>
      <th aria-label="Actions" />
    </tr>
  </thead>
);

interface OrdersProps {
  readonly orders: readonly Order[];
  readonly commands: Readonly<Record<string, CommandMark>>;
}

function OrdersTable({ orders, commands }: OrdersProps) {
  return (
    <table className="t" data-testid="orders-table" data-virtual="false">
      {ORDER_COLUMNS}
      <tbody>
        {orders.length === 0 && <EmptyRow cols={9} text="No open orders" />}
        {orders.map((o) => (
          <OrderRow key={o.order_id} order={o} mark={commands[o.order_id]} />
        ))}
      </tbody>
    </table>
  );
}

const ORDER_ROW_HEIGHT = 25;
/**
 * Past this many orders the table renders only what its scroller shows. Lower than the
 * signals' threshold: an updated order moves to the top, and React then moves every
 * row below it in the DOM, every frame (a few dozen busy orders cost more than a
 * thousand quiet signals).
 */
const ORDERS_VIRTUALIZE_ABOVE = 30;

/**
 * Many orders: only the rows on screen, between two spacer rows, in a fixed-height
 * contained scroller. Orders that change move to the top; with every row in the DOM
 * React would move each row below them, every frame.
 */
function VirtualOrders({ orders, commands }: OrdersProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: orders.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ORDER_ROW_HEIGHT,
    overscan: 6,
    getItemKey: (index) => orders[index]?.order_id ?? index,
  });
  const items = virtualizer.getVirtualItems();
  const top = items[0]?.start ?? 0;
  const bottom = virtualizer.getTotalSize() - (items.at(-1)?.end ?? 0);
  return (
    <div className="scroll scroll-fixed" ref={scroller}>
      <table className="t vtable" data-testid="orders-table" data-virtual="true" data-count={orders.length}>
        {ORDER_COLUMNS}
        <tbody>
          {top > 0 && <tr className="spacer" style={{ height: top }} aria-hidden="true" />}
          {items.map((item) => {
            const o = orders[item.index];
            return o ? <OrderRow key={item.key} order={o} mark={commands[o.order_id]} /> : null;
          })}
          {bottom > 0 && <tr className="spacer" style={{ height: bottom }} aria-hidden="true" />}
        </tbody>
      </table>
    </div>
  );
}

/** Newest first; ids break ties so the order is total (and the same every frame). */
function newestOrderFirst(a: Order, b: Order): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.order_id < b.order_id ? 1 : a.order_id > b.order_id ? -1 : 0;
}

/** Rows whose order did not change are not rendered again (orders update many times a second). */
const OrderRow = memo(function OrderRow({ order: o, mark }: { order: Order; mark: CommandMark | undefined }) {
  const { desk } = useDesk();
  const pending = (o as Record<string, unknown>).pending_action === 'cancel';
  return (
    <tr data-order-id={o.order_id} className={pending ? 'pending' : undefined}>
      <td className="num muted tl">{formatTime(o.created_at)}</td>
      <td className="sym">{o.symbol}</td>
      <td className={o.side === 'buy' ? 'up' : 'down'}>{o.side}</td>
      <td>{o.order_type}</td>
      <td className="num">{formatQty(o.quantity)}</td>
      <td className="num">{formatQty(o.filled_quantity)}</td>
      <td className="num">{o.price === null ? 'MKT' : formatPrice(o.price)}</td>
      <td>
        {pending ? <span className="badge badge-pending">cancelling…</span> : <span className="badge">{o.status}</span>}
        {mark?.phase === 'rolled_back' && (
          <span className="row-error" role="alert">
            {' '}
            Cancel failed: {mark.message}
          </span>
        )}
      </td>
      <td className="actions">
        <button type="button" className="btn btn-small btn-danger" disabled={pending} onClick={() => desk.cancelOrder(o.order_id)} aria-label={`Cancel order ${o.order_id}`}>
          Cancel
        </button>
      </td>
    </tr>
  );
});

export function EmptyRow({ cols, text }: { cols: number; text: string }) {
  return (
    <tr>
      <td colSpan={cols} className="empty-cell">
        {text}
      </td>
    </tr>
  );
}
