/**
 * React bindings for the TradeSync SDK, the zustand way: the client is the framework-free
 * store (its replicas, status and commands), and these hooks are a thin layer over
 * `useSyncExternalStore`. A component re-renders when what it selected changed, not on
 * every event of the stream.
 */
import { createContext, createElement, useCallback, useContext, useRef, useSyncExternalStore, type ReactNode } from 'react';
import type { ClientStatus, CommandOptions, CommandResult, TradeSyncClient } from '@tradesync/client';
import type { StreamState } from '@tradesync/protocol';

const ClientContext = createContext<TradeSyncClient | null>(null);

export interface TradeSyncProviderProps {
  /** The page's one client (e.g. the SDK's `getClient(url)`), shared by every hook below. */
  readonly client: TradeSyncClient;
  readonly children?: ReactNode;
}

/** Gives the components below it one client; hooks outside it throw. */
export function TradeSyncProvider({ client, children }: TradeSyncProviderProps) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The client of the nearest `TradeSyncProvider`. */
export function useTradeSync(): TradeSyncClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useTradeSync (and every TradeSync hook) must be used inside <TradeSyncProvider client={...}>');
  return client;
}

export interface UseStreamOptions<S, T> {
  /** Picks what the component shows; it re-renders only when that changes (`isEqual`). */
  readonly selector?: (state: S) => T;
  /** Whether two selections are the same. @default Object.is */
  readonly isEqual?: (a: T, b: T) => boolean;
  /** A session-scoped view (orders, signals, state machines, session positions). */
  readonly sessionId?: string;
  /** Conflation for `market:*` and `indicators:*`: at most this many frames a second. */
  readonly maxRate?: number;
}

/**
 * The live state of one stream (or the part `selector` picks), kept current across
 * reconnects; undefined until the subscription exists. Components naming the same
 * stream share one subscription on the server.
 */
export function useStream<S extends StreamState = StreamState>(stream: string, options?: Omit<UseStreamOptions<S, S>, 'selector'>): S | undefined;
export function useStream<S extends StreamState, T>(stream: string, options: UseStreamOptions<S, T> & { readonly selector: (state: S) => T }): T | undefined;
export function useStream<S extends StreamState, T>(stream: string, options: UseStreamOptions<S, T> = {}): S | T | undefined {
  const client = useTradeSync();
  const { sessionId, maxRate } = options;
  const subscribe = useCallback(
    (onStoreChange: () => void) => {
      const handle = client.subscribe<S>(stream, { onChange: onStoreChange }, { ...(sessionId !== undefined ? { sessionId } : {}), ...(maxRate !== undefined ? { maxRate } : {}) });
      return () => handle.unsubscribe();
    },
    [client, stream, sessionId, maxRate],
  );
  // The selection is cached per state object and selector: `getState` returns the same
  // object until the stream changes, and a selector returning a new object each call must
  // not make React render forever. An equal selection (`isEqual`) keeps the old reference.
  const cache = useRef<{ state: S | undefined; selector: ((state: S) => T) | undefined; selected: S | T | undefined } | null>(null);
  const { selector } = options;
  const isEqual = options.isEqual ?? Object.is;
  const getSnapshot = (): S | T | undefined => {
    const state = client.getState<S>(stream);
    const last = cache.current;
    if (last && last.state === state && last.selector === selector) return last.selected;
    const selected = state === undefined || !selector ? state : selector(state);
    const same = last !== null && last.selected !== undefined && selected !== undefined && isEqual(last.selected as T, selected as T);
    const kept = same ? last.selected : selected;
    cache.current = { state, selector, selected: kept };
    return kept;
  };
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}

/** The connection's status (`state`, `attempt`, `nextRetryAt`, …); `describeStatus` words it. */
export function useConnectionStatus(): ClientStatus {
  const client = useTradeSync();
  const subscribe = useCallback((onStoreChange: () => void) => client.on('status', onStoreChange), [client]);
  const getSnapshot = () => client.status;
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}

export type SendCommand = (action: string, payload?: Record<string, unknown>, options?: CommandOptions) => Promise<CommandResult>;

/** A function that sends commands through the client (optimistic patches included); stable across renders. */
export function useCommand(): SendCommand {
  const client = useTradeSync();
  return useCallback<SendCommand>((action, payload = {}, options = {}) => client.command(action, payload, options), [client]);
}
