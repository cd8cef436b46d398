import { z } from 'zod';
import * as E from './entities.js';
import { IsoTime } from './decimal.js';
import type { StreamKind } from './streams.js';

/**
 * Every live event type, the stream kind it belongs to and the schema of its data.
 * Each type belongs to exactly one kind, so an event's type says which reducer applies.
 */
export const EVENT_TYPES = {
  'order:updated': { kind: 'orders', data: E.Order },
  'order:closed': { kind: 'orders', data: E.OrderClosed },
  'balance:updated': { kind: 'portfolio', data: E.Balance },
  'position:updated': { kind: 'portfolio', data: E.Position },
  'position:closed': { kind: 'portfolio', data: E.PositionClosed },
  'portfolio:updated': { kind: 'portfolio', data: E.PortfolioTotals },
  'campaign:updated': { kind: 'portfolio', data: E.Campaign },
  'signal:new': { kind: 'signals', data: E.Signal },
  'signal:executed': { kind: 'signals', data: E.SignalChange },
  'signal:rejected': { kind: 'signals', data: E.SignalChange },
  pattern_detected: { kind: 'signals', data: E.Pattern },
  instance_added: { kind: 'state_machines', data: E.Instance },
  state_change: { kind: 'state_machines', data: E.StateChange },
  instance_removed: { kind: 'state_machines', data: E.InstanceRemoved },
  full_update: { kind: 'state_machines', data: E.FullUpdate },
  'indicator:updated': { kind: 'indicators', data: E.IndicatorUpdate },
  liquidation_alert: { kind: 'alerts', data: E.Alert },
  reconciliation_mismatch: { kind: 'alerts', data: E.Alert },
  'market:tick': { kind: 'market', data: E.MarketTick },
} as const satisfies Record<string, { kind: StreamKind; data: z.ZodType }>;

export type EventType = keyof typeof EVENT_TYPES;
export type EventData<T extends EventType> = z.infer<(typeof EVENT_TYPES)[T]['data']>;

export function isEventType(type: unknown): type is EventType {
  return typeof type === 'string' && Object.hasOwn(EVENT_TYPES, type);
}

/** The event types a stream of this kind accepts. */
export function eventTypesOf(kind: StreamKind): EventType[] {
  return (Object.keys(EVENT_TYPES) as EventType[]).filter((t) => EVENT_TYPES[t].kind === kind);
}

/** What a producer sends to `POST /api/v1/events` (and what the simulator appends). */
export const EventInput = z.object({
  stream: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type EventInput = z.infer<typeof EventInput>;

/** An event as stored in a stream's log and delivered to clients. */
export const StreamEvent = z.object({
  type: z.string(),
  stream: z.string(),
  epoch: z.string(),
  offset: z.number().int().positive(),
  timestamp: IsoTime,
  data: z.record(z.string(), z.unknown()),
});
export type StreamEvent = z.infer<typeof StreamEvent>;

/** The part of an event the reducer reads. */
export interface ReducibleEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}
