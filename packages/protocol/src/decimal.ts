import { z } from 'zod';

/** Money, prices and quantities travel as decimal strings, never floats. */
export const Decimal = z.string().regex(/^-?\d+(\.\d+)?$/, 'expected a decimal string such as "42000.50"');
export type Decimal = z.infer<typeof Decimal>;

/** UTC ISO-8601 with `Z`. */
export const IsoTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/, 'expected a UTC ISO-8601 time ending in Z');
export type IsoTime = z.infer<typeof IsoTime>;

export function nowIso(): string {
  return new Date().toISOString();
}
