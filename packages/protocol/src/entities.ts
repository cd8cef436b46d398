import { z } from 'zod';
import { Decimal, IsoTime } from './decimal.js';

/**
 * Entities of the wire contract. Each may carry more fields than these (loose
 * objects keep them); the named fields are validated where data enters the system.
 */

/**
 * A name that keys an entity in a state's collections (an order id, a symbol, a
 * currency…). `__proto__` is refused: assigned as a key of a plain object it would
 * replace the object's prototype instead of adding the entity, which would vanish.
 */
const EntityKey = z
  .string()
  .min(1)
  .refine((key) => key !== '__proto__', { message: 'may not be "__proto__"' });

export const OrderSide = z.enum(['buy', 'sell']);
export const OrderStatus = z.enum(['pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired']);
export type OrderStatus = z.infer<typeof OrderStatus>;
/** Orders in these states are no longer open: the `orders` state drops them. */
export const CLOSED_ORDER_STATUSES: ReadonlySet<string> = new Set(['filled', 'cancelled', 'rejected', 'expired']);

export const Order = z.looseObject({
  order_id: EntityKey,
  symbol: EntityKey,
  side: OrderSide,
  order_type: z.enum(['market', 'limit', 'stop', 'stop_limit']),
  quantity: Decimal,
  price: Decimal.nullable(),
  filled_quantity: Decimal,
  status: OrderStatus,
  session_id: z.string().nullable(),
  created_at: IsoTime,
});
export type Order = z.infer<typeof Order>;

export const OrderClosed = z.looseObject({ order_id: EntityKey, status: OrderStatus });

export const Balance = z.looseObject({
  currency: EntityKey,
  total: Decimal,
  available: Decimal,
  reserved: Decimal,
});
export type Balance = z.infer<typeof Balance>;

export const Position = z.looseObject({
  symbol: EntityKey,
  side: z.enum(['long', 'short']),
  quantity: Decimal,
  avg_price: Decimal,
  mark_price: Decimal,
  unrealized_pnl: Decimal,
});
export type Position = z.infer<typeof Position>;

export const PositionClosed = z.looseObject({ symbol: EntityKey });

export const PortfolioTotals = z.looseObject({
  total_value_usd: Decimal,
  unrealized_pnl: Decimal,
  realized_pnl: Decimal,
  total_heat: Decimal,
  available_capacity: Decimal,
});
export type PortfolioTotals = z.infer<typeof PortfolioTotals>;

export const Campaign = z.looseObject({
  campaign_id: EntityKey,
  risk_allocated: Decimal,
  positions_count: z.number().int().nonnegative(),
});
export type Campaign = z.infer<typeof Campaign>;

export const PatternType = z.enum(['SPRING', 'UTAD', 'SOS', 'LPS', 'SC', 'AR', 'ST']);

export const Signal = z.looseObject({
  id: EntityKey,
  symbol: EntityKey,
  pattern_type: PatternType,
  confidence_score: z.number().min(0).max(100),
  status: z.enum(['pending', 'executed', 'rejected', 'expired']),
  session_id: z.string().nullable(),
});
export type Signal = z.infer<typeof Signal>;

/** `signal:executed` / `signal:rejected`: the id plus whatever changed. */
export const SignalChange = z.looseObject({ id: EntityKey });

export const Pattern = z.looseObject({
  id: EntityKey,
  symbol: EntityKey,
  pattern_type: PatternType,
  confidence_score: z.number().min(0).max(100),
  phase: z.string(),
  test_confirmed: z.boolean(),
});
export type Pattern = z.infer<typeof Pattern>;

export const StrategyState = z.enum(['MONITORING', 'SIGNAL_DETECTED', 'ENTRY_PENDING', 'POSITION_OPEN', 'EXITING']);
export type StrategyState = z.infer<typeof StrategyState>;

export const Instance = z.looseObject({
  instance_id: EntityKey,
  session_id: z.string().nullable(),
  strategy: EntityKey,
  symbol: EntityKey,
  state: StrategyState,
});
export type Instance = z.infer<typeof Instance>;

export const StateChange = z.looseObject({
  instance_id: EntityKey,
  state: StrategyState,
  previous_state: StrategyState.nullable(),
});
export const InstanceRemoved = z.looseObject({ instance_id: EntityKey });
export const FullUpdate = z.looseObject({ instances: z.array(Instance) });

export const IndicatorUpdate = z.looseObject({
  symbol: EntityKey,
  name: EntityKey,
  value: Decimal,
});

/** Alerts are kept by id so that applying one twice changes nothing. */
export const Alert = z.looseObject({
  id: EntityKey,
  severity: z.enum(['info', 'warning', 'critical']).optional(),
  message: z.string().optional(),
});
export type Alert = z.infer<typeof Alert>;

export const MarketTick = z.looseObject({
  symbol: EntityKey,
  price: Decimal,
  timestamp: IsoTime,
});
export type MarketTick = z.infer<typeof MarketTick>;
