import type { EventInput, OrderStatus } from '@tradesync/protocol';
import { CommandError, CommandErrorCode } from './codes.js';
import { iso } from './clock.js';
import { ONE, ZERO, big, dec, isMultipleOf, max, min, round, roundDown, roundUp, toStep, type Big } from './money.js';
import type { Rng } from './rng.js';
import type { SymbolSpec } from './symbols.js';

/**
 * The paper broker: market and limit orders with partial fills, net positions per
 * symbol on isolated margin, balances with reserved funds, realized P&L.
 *
 * Money model (the invariants the tests check):
 *  - `cash` (the balance's total) changes only by realized P&L;
 *  - `reserved` = margin held for open opening orders + margin of open positions;
 *  - `available` = cash − reserved, and never goes below zero: an order is accepted
 *    only if its margin fits in `available`; a fill moves margin from the order to
 *    the position; a closing fill releases margin and books P&L, where a loss is
 *    capped at the margin released (isolated margin: the rest is the liquidation
 *    engine's loss, as on a real exchange).
 * Every change pushes the wire events it causes onto `out`.
 *
 * One file on purpose: orders, fills, positions and balances change together in every
 * step, and the money invariants above hold across all of them.
 */

type Side = 'buy' | 'sell';
type PositionSide = 'long' | 'short';

export interface OrderRequest {
  readonly symbol: string;
  readonly side: Side;
  readonly order_type: 'market' | 'limit';
  readonly quantity: Big;
  readonly price?: Big | null;
  /** Only ever reduces the position; needs no margin. Set automatically for an order against the position. */
  readonly reduce_only?: boolean;
  readonly session_id: string | null;
  readonly signal_id?: string;
  readonly instance_id?: string;
  /** Protective stop of the position this order opens (for heat). */
  readonly stop_price?: Big;
  readonly reason?: string;
}

export interface PaperOrder {
  readonly order_id: string;
  readonly symbol: string;
  readonly side: Side;
  readonly order_type: 'market' | 'limit';
  readonly quantity: Big;
  readonly price: Big | null;
  filled: Big;
  status: OrderStatus;
  readonly session_id: string | null;
  readonly created_at: string;
  updated_at: string;
  readonly reduce_only: boolean;
  /** Margin still held for the unfilled part. */
  reserved: Big;
  fill_notional: Big;
  readonly signal_id: string | null;
  readonly instance_id: string | null;
  readonly stop_price: Big | null;
  readonly reason: string | null;
}

export interface PaperPosition {
  readonly symbol: string;
  readonly side: PositionSide;
  quantity: Big;
  avg_price: Big;
  margin: Big;
  mark: Big;
  realized: Big;
  readonly opened_at: string;
  updated_at: string;
  stop_price: Big;
  session_id: string | null;
  /** 0 healthy, 1 warning sent, 2 critical sent (see MARGIN_LEVELS). */
  alertLevel: number;
}

/** Margin ratio = (margin + unrealized P&L) / margin. Alerts fire as it falls past these. */
export const MARGIN_LEVELS = { warning: big('0.8'), critical: big('0.6'), liquidation: big('0.4'), recovered: big('0.85') } as const;
/** A market order reserves margin at the mark plus this buffer, for slippage. */
const MARKET_BUFFER = big('1.01');

export class PaperAccount {
  cash: Big;
  realized = ZERO;
  /** Open orders only, in placement order. */
  readonly orders = new Map<string, PaperOrder>();
  readonly positions = new Map<string, PaperPosition>();
  /** Signed sum of every fill per symbol (buys +, sells −): equals the position's signed quantity. */
  readonly fillTotals = new Map<string, Big>();
  orderSeq = 0;
  alertSeq = 0;
  #lastBalance = '';

  constructor(
    readonly id: string,
    readonly currency: string,
    deposit: Big,
  ) {
    this.cash = deposit;
  }

  reserved(): Big {
    let sum = ZERO;
    for (const o of this.orders.values()) sum = sum.plus(o.reserved);
    for (const p of this.positions.values()) sum = sum.plus(p.margin);
    return sum;
  }

  available(): Big {
    return this.cash.minus(this.reserved());
  }

  balanceEntity(): Record<string, unknown> {
    const reserved = this.reserved();
    return { currency: this.currency, total: dec(this.cash), available: dec(this.cash.minus(reserved)), reserved: dec(reserved) };
  }

  /** Pushes `balance:updated` when the balance differs from the last one pushed. */
  pushBalance(out: EventInput[], force = false): void {
    const data = this.balanceEntity();
    const key = JSON.stringify(data);
    if (!force && key === this.#lastBalance) return;
    this.#lastBalance = key;
    out.push({ stream: `portfolio:${this.id}`, type: 'balance:updated', data });
  }
}

export function unrealizedPnl(p: PaperPosition): Big {
  const diff = p.mark.minus(p.avg_price).times(p.quantity);
  return round(p.side === 'long' ? diff : diff.neg());
}

export function orderEntity(o: PaperOrder): Record<string, unknown> {
  return {
    order_id: o.order_id,
    symbol: o.symbol,
    side: o.side,
    order_type: o.order_type,
    quantity: dec(o.quantity),
    price: o.price ? dec(o.price) : null,
    filled_quantity: dec(o.filled),
    status: o.status,
    session_id: o.session_id,
    created_at: o.created_at,
    updated_at: o.updated_at,
    avg_fill_price: o.filled.gt(0) ? dec(round(o.fill_notional.div(o.filled))) : null,
    reduce_only: o.reduce_only,
    reserved: dec(o.reserved),
    signal_id: o.signal_id,
    ...(o.reason ? { reason: o.reason } : {}),
  };
}

export class PaperBroker {
  readonly accounts = new Map<string, PaperAccount>();
  readonly specs: ReadonlyMap<string, SymbolSpec>;
  readonly #marks = new Map<string, Big>();
  readonly #lastPosition = new Map<string, string>();

  constructor(
    specs: readonly SymbolSpec[],
    private readonly rng: Rng,
    private readonly runId = 'paper',
  ) {
    this.specs = new Map(specs.map((s) => [s.symbol, s]));
  }

  openAccount(id: string, deposit: Big, currency = 'USD'): PaperAccount {
    const account = new PaperAccount(id, currency, deposit);
    this.accounts.set(id, account);
    return account;
  }

  account(id: string): PaperAccount {
    const account = this.accounts.get(id);
    if (!account) throw new CommandError(CommandErrorCode.UNKNOWN_ACCOUNT, `no paper account "${id}"`);
    return account;
  }

  mark(symbol: string): Big | undefined {
    return this.#marks.get(symbol);
  }

  setMark(symbol: string, price: Big): void {
    this.#marks.set(symbol, price);
    for (const account of this.accounts.values()) {
      const p = account.positions.get(symbol);
      if (p) p.mark = price;
    }
  }

  positionEntity(account: PaperAccount, p: PaperPosition): Record<string, unknown> {
    const spec = this.specs.get(p.symbol);
    // Where the margin ratio reaches the liquidation level.
    const cushion = p.margin.times(ONE.minus(MARGIN_LEVELS.liquidation)).div(p.quantity);
    const rawLiq = p.side === 'long' ? p.avg_price.minus(cushion) : p.avg_price.plus(cushion);
    const liq = spec ? toStep(max(rawLiq, ZERO), spec.tick) : round(max(rawLiq, ZERO));
    return {
      symbol: p.symbol,
      side: p.side,
      quantity: dec(p.quantity),
      avg_price: dec(p.avg_price),
      mark_price: dec(p.mark),
      unrealized_pnl: dec(unrealizedPnl(p)),
      realized_pnl: dec(p.realized),
      margin: dec(p.margin),
      leverage: spec ? dec(spec.leverage) : '1',
      liquidation_price: dec(liq),
      stop_price: dec(p.stop_price),
      session_id: p.session_id,
      opened_at: p.opened_at,
      updated_at: p.updated_at,
      account: account.id,
    };
  }

  /** Pushes `position:updated` for a position when it differs from the last one pushed (marks included). */
  pushPosition(account: PaperAccount, p: PaperPosition, out: EventInput[], force = false): void {
    const data = this.positionEntity(account, p);
    const key = `${account.id}\u0000${p.symbol}`;
    const { updated_at: _u, ...compare } = data;
    const fingerprint = JSON.stringify(compare);
    if (!force && this.#lastPosition.get(key) === fingerprint) return;
    this.#lastPosition.set(key, fingerprint);
    out.push({ stream: `portfolio:${account.id}`, type: 'position:updated', data });
  }

  /** Validates, reserves margin and opens an order. Throws CommandError with the reason when refused. */
  place(accountId: string, req: OrderRequest, nowMs: number, out: EventInput[]): PaperOrder {
    const account = this.account(accountId);
    const spec = this.specs.get(req.symbol);
    if (!spec) throw new CommandError(CommandErrorCode.UNKNOWN_SYMBOL, `unknown symbol "${req.symbol}"; traded: ${[...this.specs.keys()].join(', ')}`);
    if (req.quantity.lte(0) || !isMultipleOf(req.quantity, spec.lot)) {
      throw new CommandError(CommandErrorCode.INVALID_QUANTITY, `quantity must be a positive multiple of ${dec(spec.lot)} for ${spec.symbol}`);
    }
    let price: Big | null = null;
    if (req.order_type === 'limit') {
      if (!req.price || req.price.lte(0) || !isMultipleOf(req.price, spec.tick)) {
        throw new CommandError(CommandErrorCode.INVALID_PRICE, `a limit order needs a positive price that is a multiple of ${dec(spec.tick)}`);
      }
      price = req.price;
    }
    const markPrice = this.#marks.get(spec.symbol);
    if (!markPrice) throw new CommandError(CommandErrorCode.NO_MARKET_PRICE, `${spec.symbol} has no market price yet`);

    const position = account.positions.get(spec.symbol);
    const against = position && (position.side === 'long') === (req.side === 'sell');
    let reduceOnly = req.reduce_only === true || Boolean(against);
    if (reduceOnly) {
      if (!position || !against) throw new CommandError(CommandErrorCode.POSITION_CONFLICT, `a reduce-only ${req.side} needs an open ${req.side === 'sell' ? 'long' : 'short'} position in ${spec.symbol}`);
      const free = position.quantity.minus(this.#pendingReduce(account, spec.symbol));
      if (req.quantity.gt(free)) {
        throw new CommandError(
          CommandErrorCode.POSITION_CONFLICT,
          `${req.side} ${dec(req.quantity)} ${spec.symbol} would flip the ${position.side} position (${dec(free)} left to close); close it first or order less`,
        );
      }
    } else {
      for (const o of account.orders.values()) {
        if (o.symbol === spec.symbol && !o.reduce_only && o.side !== req.side) {
          throw new CommandError(CommandErrorCode.POSITION_CONFLICT, `open ${o.side} order ${o.order_id} in ${spec.symbol} works the other way; cancel it first`);
        }
      }
      reduceOnly = false;
    }

    let reserve = ZERO;
    if (!reduceOnly) {
      const refPrice = price ?? markPrice.times(MARKET_BUFFER);
      reserve = roundUp(req.quantity.times(refPrice).div(spec.leverage));
      const available = account.available();
      if (reserve.gt(available)) {
        throw new CommandError(
          CommandErrorCode.INSUFFICIENT_BALANCE,
          `insufficient balance: the order needs ${dec(reserve)} ${account.currency} of margin, ${dec(available)} is available`,
        );
      }
    }

    const now = iso(nowMs);
    const order: PaperOrder = {
      order_id: `ord-${account.id}-${this.runId}-${++account.orderSeq}`,
      symbol: spec.symbol,
      side: req.side,
      order_type: req.order_type,
      quantity: req.quantity,
      price,
      filled: ZERO,
      status: 'open',
      session_id: req.session_id,
      created_at: now,
      updated_at: now,
      reduce_only: reduceOnly,
      reserved: reserve,
      fill_notional: ZERO,
      signal_id: req.signal_id ?? null,
      instance_id: req.instance_id ?? null,
      stop_price: req.stop_price ?? null,
      reason: req.reason ?? null,
    };
    account.orders.set(order.order_id, order);
    out.push({ stream: `orders:${account.id}`, type: 'order:updated', data: orderEntity(order) });
    account.pushBalance(out);
    return order;
  }

  /** Cancels an open order, releasing its margin. */
  cancel(accountId: string, orderId: string, nowMs: number, out: EventInput[], reason = 'cancelled by request'): PaperOrder {
    const account = this.account(accountId);
    const order = account.orders.get(orderId);
    if (!order) {
      throw new CommandError(CommandErrorCode.UNKNOWN_ORDER, `no open order "${orderId}" in account ${account.id} (it may be filled or cancelled already)`);
    }
    this.#close(account, order, 'cancelled', nowMs, out, reason);
    account.pushBalance(out);
    return order;
  }

  /** Places a reduce-only market order for what is left of the position. */
  closePosition(accountId: string, symbol: string, nowMs: number, out: EventInput[], reason = 'close requested'): PaperOrder {
    const account = this.account(accountId);
    const position = account.positions.get(symbol);
    if (!position) throw new CommandError(CommandErrorCode.UNKNOWN_POSITION, `no open position in ${symbol}`);
    const free = position.quantity.minus(this.#pendingReduce(account, symbol));
    if (free.lte(0)) throw new CommandError(CommandErrorCode.POSITION_ALREADY_CLOSING, `orders closing the whole ${symbol} position are already working`);
    return this.place(
      accountId,
      { symbol, side: position.side === 'long' ? 'sell' : 'buy', order_type: 'market', quantity: free, reduce_only: true, session_id: position.session_id, reason },
      nowMs,
      out,
    );
  }

  /** One matching pass over every open order against the current marks. */
  match(nowMs: number, out: EventInput[]): void {
    for (const account of this.accounts.values()) {
      let touched = false;
      for (const order of [...account.orders.values()]) {
        if (this.#matchOne(account, order, nowMs, out)) touched = true;
      }
      if (touched) account.pushBalance(out);
    }
  }

  /**
   * Checks every position's margin ratio: alerts when it falls past a level, and
   * liquidates (closes at the mark) at the liquidation level. Returns the symbols liquidated.
   */
  checkMargins(nowMs: number, out: EventInput[]): Array<{ account: string; symbol: string }> {
    const liquidated: Array<{ account: string; symbol: string }> = [];
    for (const account of this.accounts.values()) {
      for (const p of [...account.positions.values()]) {
        if (p.margin.lte(0)) continue;
        const ratio = p.margin.plus(unrealizedPnl(p)).div(p.margin);
        const level = ratio.lte(MARGIN_LEVELS.liquidation) ? 3 : ratio.lt(MARGIN_LEVELS.critical) ? 2 : ratio.lt(MARGIN_LEVELS.warning) ? 1 : 0;
        if (ratio.gt(MARGIN_LEVELS.recovered)) p.alertLevel = 0;
        if (level <= p.alertLevel) continue;
        p.alertLevel = level;
        const pct = ratio.times(100).round(1).toFixed(1);
        const messages = [
          '',
          `Margin of the ${p.symbol} ${p.side} position is at ${pct}% — add funds or reduce it`,
          `Margin of the ${p.symbol} ${p.side} position is at ${pct}% — liquidation is near`,
          `The ${p.symbol} ${p.side} position was liquidated at ${dec(p.mark)} (margin at ${pct}%)`,
        ];
        const entity = this.positionEntity(account, p);
        out.push({
          stream: `alerts:${account.id}`,
          type: 'liquidation_alert',
          data: {
            id: `liq-${account.id}-${this.runId}-${++account.alertSeq}`,
            severity: level === 1 ? 'warning' : 'critical',
            message: messages[level]!,
            symbol: p.symbol,
            side: p.side,
            margin_ratio: dec(ratio.round(4)),
            mark_price: dec(p.mark),
            liquidation_price: entity.liquidation_price,
            liquidated: level === 3,
            account: account.id,
            timestamp: iso(nowMs),
          },
        });
        if (level === 3) {
          this.#liquidate(account, p, nowMs, out);
          liquidated.push({ account: account.id, symbol: p.symbol });
        }
      }
    }
    return liquidated;
  }

  /** Pushes `position:updated` for every position whose mark-to-market changed. */
  pushMarks(accountId: string, out: EventInput[]): void {
    const account = this.account(accountId);
    for (const p of account.positions.values()) this.pushPosition(account, p, out);
  }

  #pendingReduce(account: PaperAccount, symbol: string): Big {
    let sum = ZERO;
    for (const o of account.orders.values()) if (o.symbol === symbol && o.reduce_only) sum = sum.plus(o.quantity.minus(o.filled));
    return sum;
  }

  #liquidate(account: PaperAccount, p: PaperPosition, nowMs: number, out: EventInput[]): void {
    // Closing orders already working would fight the liquidation: cancel them first.
    for (const o of [...account.orders.values()]) {
      if (o.symbol === p.symbol && o.reduce_only) this.#close(account, o, 'cancelled', nowMs, out, 'liquidation');
    }
    const order = this.place(
      account.id,
      { symbol: p.symbol, side: p.side === 'long' ? 'sell' : 'buy', order_type: 'market', quantity: p.quantity, reduce_only: true, session_id: p.session_id, reason: 'liquidation' },
      nowMs,
      out,
    );
    this.#fill(account, order, order.quantity, p.mark, nowMs, out);
    account.pushBalance(out);
  }

  #matchOne(account: PaperAccount, order: PaperOrder, nowMs: number, out: EventInput[]): boolean {
    const spec = this.specs.get(order.symbol);
    const markPrice = this.#marks.get(order.symbol);
    if (!spec || !markPrice) return false;
    const marketable =
      order.order_type === 'market' || (order.price !== null && (order.side === 'buy' ? markPrice.lte(order.price) : markPrice.gte(order.price)));
    if (!marketable) return false;
    let remaining = order.quantity.minus(order.filled);
    if (order.reduce_only) {
      const position = account.positions.get(order.symbol);
      if (!position) {
        this.#close(account, order, 'cancelled', nowMs, out, 'position already closed');
        return true;
      }
      remaining = min(remaining, position.quantity);
    }
    // Fill all that is left, or a part of it: the book is not infinitely deep.
    let qty = remaining;
    if (remaining.gt(spec.lot) && this.rng.chance(0.45)) {
      qty = toStep(remaining.times((0.3 + 0.5 * this.rng.next()).toFixed(4)), spec.lot, 'down');
      if (qty.lte(0)) qty = spec.lot;
    }
    let price = order.price ?? markPrice;
    if (order.order_type === 'market') {
      const slip = spec.tick.times(this.rng.int(0, 2));
      price = order.side === 'buy' ? markPrice.plus(slip) : max(markPrice.minus(slip), spec.tick);
    }
    this.#fill(account, order, qty, price, nowMs, out);
    // A reduce-only order larger than what is left of the position ends with it.
    if (order.reduce_only && !account.positions.has(order.symbol) && account.orders.has(order.order_id)) {
      this.#close(account, order, 'cancelled', nowMs, out, 'position closed');
    }
    return true;
  }

  #fill(account: PaperAccount, order: PaperOrder, qty: Big, price: Big, nowMs: number, out: EventInput[]): void {
    const now = iso(nowMs);
    const remainingBefore = order.quantity.minus(order.filled);
    order.filled = order.filled.plus(qty);
    order.fill_notional = order.fill_notional.plus(qty.times(price));
    order.updated_at = now;
    const signed = order.side === 'buy' ? qty : qty.neg();
    account.fillTotals.set(order.symbol, (account.fillTotals.get(order.symbol) ?? ZERO).plus(signed));

    const position = account.positions.get(order.symbol);
    if (order.reduce_only) {
      if (!position) throw new Error(`reduce-only fill without a position in ${order.symbol}`);
      const released = qty.eq(position.quantity) ? position.margin : roundDown(position.margin.times(qty).div(position.quantity));
      const move = price.minus(position.avg_price).times(qty);
      const pnl = round(position.side === 'long' ? move : move.neg());
      const booked = max(pnl, released.neg());
      account.cash = account.cash.plus(booked);
      account.realized = account.realized.plus(booked);
      position.realized = position.realized.plus(booked);
      position.margin = position.margin.minus(released);
      position.quantity = position.quantity.minus(qty);
      position.mark = this.#marks.get(order.symbol) ?? price;
      position.updated_at = now;
      if (position.quantity.eq(0)) {
        account.positions.delete(order.symbol);
        // Other closing orders have nothing left to close; left open they could later hit a new position.
        for (const o of [...account.orders.values()]) {
          if (o !== order && o.symbol === order.symbol && o.reduce_only) this.#close(account, o, 'cancelled', nowMs, out, 'position closed');
        }
        this.#lastPosition.delete(`${account.id}\u0000${order.symbol}`);
        out.push({ stream: `portfolio:${account.id}`, type: 'position:closed', data: { symbol: order.symbol, realized_pnl: dec(position.realized), closed_at: now, account: account.id } });
      } else {
        this.pushPosition(account, position, out, true);
      }
    } else {
      const portion = qty.eq(remainingBefore) ? order.reserved : roundDown(order.reserved.times(qty).div(remainingBefore));
      order.reserved = order.reserved.minus(portion);
      const spec = this.specs.get(order.symbol)!;
      const side: PositionSide = order.side === 'buy' ? 'long' : 'short';
      if (position) {
        const total = position.quantity.plus(qty);
        position.avg_price = round(position.avg_price.times(position.quantity).plus(price.times(qty)).div(total));
        position.quantity = total;
        position.margin = position.margin.plus(portion);
        position.updated_at = now;
        if (order.stop_price) position.stop_price = order.stop_price;
        this.pushPosition(account, position, out, true);
      } else {
        const stop = order.stop_price ?? toStep(side === 'long' ? price.times(ONE.minus(spec.stopFraction)) : price.times(ONE.plus(spec.stopFraction)), spec.tick);
        const created: PaperPosition = {
          symbol: order.symbol,
          side,
          quantity: qty,
          avg_price: price,
          margin: portion,
          mark: this.#marks.get(order.symbol) ?? price,
          realized: ZERO,
          opened_at: now,
          updated_at: now,
          stop_price: stop,
          session_id: order.session_id,
          alertLevel: 0,
        };
        account.positions.set(order.symbol, created);
        this.pushPosition(account, created, out, true);
      }
    }

    if (order.filled.eq(order.quantity)) this.#close(account, order, 'filled', nowMs, out);
    else {
      order.status = 'partially_filled';
      out.push({ stream: `orders:${account.id}`, type: 'order:updated', data: orderEntity(order) });
    }
  }

  /** Ends an order: releases what it still reserves and says so with `order:closed`. */
  #close(account: PaperAccount, order: PaperOrder, status: OrderStatus, nowMs: number, out: EventInput[], reason?: string): void {
    order.status = status;
    order.reserved = ZERO;
    order.updated_at = iso(nowMs);
    account.orders.delete(order.order_id);
    out.push({
      stream: `orders:${account.id}`,
      type: 'order:closed',
      data: { ...orderEntity(order), ...(reason ? { reason } : {}), closed_at: order.updated_at },
    });
  }

  /** A closed order still in memory? Only open orders are kept; the desk remembers the rest by id. */
  isOpen(accountId: string, orderId: string): boolean {
    return this.accounts.get(accountId)?.orders.has(orderId) ?? false;
  }
}
