/**
 * Stream names: `<kind>:<account>` for per-account streams, `market:<symbol>` for
 * public market data. Each stream has an epoch (changes only when its history is
 * lost) and dense offsets 1, 2, 3, …
 */

export const ACCOUNT_STREAM_KINDS = ['portfolio', 'orders', 'signals', 'state_machines', 'indicators', 'alerts'] as const;
export type AccountStreamKind = (typeof ACCOUNT_STREAM_KINDS)[number];
export type StreamKind = AccountStreamKind | 'market';
export const STREAM_KINDS: readonly StreamKind[] = [...ACCOUNT_STREAM_KINDS, 'market'];

const ACCOUNT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SYMBOL_RE = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,31}$/;

export type StreamRef =
  | { readonly name: string; readonly kind: AccountStreamKind; readonly account: string }
  | { readonly name: string; readonly kind: 'market'; readonly symbol: string };

/** Parses a stream name; `undefined` when it is malformed or of an unknown kind. */
export function parseStream(name: unknown): StreamRef | undefined {
  if (typeof name !== 'string' || name.length > 100) return undefined;
  const colon = name.indexOf(':');
  if (colon <= 0) return undefined;
  const kind = name.slice(0, colon);
  const rest = name.slice(colon + 1);
  if (kind === 'market') return SYMBOL_RE.test(rest) ? { name, kind, symbol: rest } : undefined;
  if ((ACCOUNT_STREAM_KINDS as readonly string[]).includes(kind) && ACCOUNT_RE.test(rest)) {
    return { name, kind: kind as AccountStreamKind, account: rest };
  }
  return undefined;
}

export function isValidAccount(account: unknown): account is string {
  return typeof account === 'string' && ACCOUNT_RE.test(account);
}

export function streamName(kind: AccountStreamKind, account: string): string;
export function streamName(kind: 'market', symbol: string): string;
export function streamName(kind: StreamKind, key: string): string {
  return `${kind}:${key}`;
}

/**
 * Kinds whose events may be conflated (`subscribe` with `max_rate`): each event carries
 * the whole value of one entity, so the newest per entity stands for all before it.
 * Orders, fills, positions, signals and alerts are never conflated.
 */
export const CONFLATABLE_KINDS: readonly StreamKind[] = ['market', 'indicators'];

export function isConflatable(kind: StreamKind): boolean {
  return CONFLATABLE_KINDS.includes(kind);
}

/**
 * The entity an event of a conflatable stream replaces (market: the symbol; indicators:
 * symbol and name): of several events with the same key, the newest alone sets the state.
 */
export function conflationKey(kind: StreamKind, data: Readonly<Record<string, unknown>>): string | undefined {
  if (kind === 'market') return String(data.symbol);
  if (kind === 'indicators') return `${String(data.symbol)}\u0000${String(data.name)}`;
  return undefined;
}

/** A position in a stream: what a client remembers to resume from. */
export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}
