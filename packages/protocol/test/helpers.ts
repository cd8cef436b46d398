import type { ReducibleEvent } from '../src/index.js';

/** Freezes a value and everything reachable from it, so any mutation throws in strict mode. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  }
  return value;
}

export function ev(type: string, data: Record<string, unknown>): ReducibleEvent {
  return { type, data };
}

export const order = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  order_id: 'o-1',
  symbol: 'BTC-USD',
  side: 'buy',
  order_type: 'limit',
  quantity: '0.5',
  price: '42000.50',
  filled_quantity: '0',
  status: 'open',
  session_id: 's-1',
  created_at: '2024-01-01T00:00:00Z',
  ...overrides,
});

export const signal = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'sig-1',
  symbol: 'BTC-USD',
  pattern_type: 'SPRING',
  confidence_score: 80,
  status: 'pending',
  session_id: 's-1',
  ...overrides,
});

export const instance = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  instance_id: 'i-1',
  session_id: 's-1',
  strategy: 'wyckoff',
  symbol: 'BTC-USD',
  state: 'MONITORING',
  ...overrides,
});
