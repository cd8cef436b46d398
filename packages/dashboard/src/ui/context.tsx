import { createContext, useContext } from 'react';
import { useStore } from 'zustand';
import { useConnectionStatus } from '@tradesync/react';
import type { StoreApi } from 'zustand/vanilla';
import type { Desk } from '../core/desk.js';
import type { ChartSeries } from '../core/series.js';
import type { ConnectionState, PanelId, DataState, DebugState, Settings, Stores, UiState } from '../core/stores.js';

/**
 * The thin React binding: components read the client through @tradesync/react (its
 * provider wraps the page: the connection status, the ticker's prices, Reconnect now)
 * and the desk's frame-paced stores through selectors, and call the desk's methods.
 * No state logic lives here.
 */
export interface DeskContext {
  readonly stores: Stores;
  readonly desk: Desk;
  readonly chart: ChartSeries;
  readonly settings: {
    update(patch: Partial<Settings>): void;
    setPanel(id: PanelId, open: boolean): void;
  };
}

export const Ctx = createContext<DeskContext | null>(null);

export function useDesk(): DeskContext {
  const ctx = useContext(Ctx);
  if (!ctx) throw new Error('useDesk outside <Ctx.Provider>');
  return ctx;
}

function bind<T>(pick: (stores: Stores) => StoreApi<T>) {
  return function useSlice<U>(selector: (state: T) => U): U {
    const { stores } = useDesk();
    return useStore(pick(stores), selector);
  };
}

export const useData = bind<DataState>((s) => s.data);
export const useConnection = bind<ConnectionState>((s) => s.connection);
export const useSettings = bind<Settings>((s) => s.settings);
export const useUi = bind<UiState>((s) => s.ui);
export const useDebug = bind<DebugState>((s) => s.debug);

/** true while the socket is live: panels grey out otherwise. */
export function useLive(): boolean {
  return useConnectionStatus().state === 'connected';
}
