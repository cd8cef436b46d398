import { createStore, type StoreApi } from 'zustand/vanilla';
import {
  initialState,
  type AccountStreamKind,
  type AlertsState,
  type IndicatorsState,
  type MarketState,
  type OrdersState,
  type PortfolioState,
  type SignalsState,
  type StateMachinesState,
} from '@tradesync/protocol';

/**
 * The dashboard's vanilla stores (zustand/vanilla: no React here). They are written
 * only by the desk (desk.ts and the parts it composes), once per animation frame,
 * and read by the React binding in ui/context.tsx.
 */

export const ACCOUNTS = ['demo', 'demo-2'] as const;
export const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL', 'MSFT'] as const;

/** One stream as the screen shows it: the replica's state, replaced whole, and its age. */
export interface StreamSlice<S> {
  readonly state: S;
  /** When the state last changed (ms since epoch), or null before the first sync. */
  readonly updatedAt: number | null;
  readonly synced: boolean;
  readonly offset: number;
  /** No `stream_position` came for two of the stream's intervals: what shows may be old. */
  readonly stale: boolean;
  /** When the server last proved the stream's position (a `stream_position`), or null. */
  readonly heardAt: number | null;
}

export interface AccountStreams {
  readonly portfolio: StreamSlice<PortfolioState>;
  readonly orders: StreamSlice<OrdersState>;
  readonly signals: StreamSlice<SignalsState>;
  readonly state_machines: StreamSlice<StateMachinesState>;
  readonly indicators: StreamSlice<IndicatorsState>;
  readonly alerts: StreamSlice<AlertsState>;
}

export interface DataState extends AccountStreams {
  readonly account: string;
  readonly market: Readonly<Record<string, StreamSlice<MarketState>>>;
  /** Frames committed with new data (a counter the render probe watches). */
  readonly frame: number;
}

function emptySlice<K extends AccountStreamKind | 'market'>(kind: K): StreamSlice<ReturnType<typeof initialState<K>>> {
  return { state: initialState(kind), updatedAt: null, synced: false, offset: 0, stale: false, heardAt: null };
}

export function emptyAccountStreams(): AccountStreams {
  return {
    portfolio: emptySlice('portfolio'),
    orders: emptySlice('orders'),
    signals: emptySlice('signals'),
    state_machines: emptySlice('state_machines'),
    indicators: emptySlice('indicators'),
    alerts: emptySlice('alerts'),
  };
}

interface SyncBanner {
  readonly streams: readonly string[];
  readonly message: string;
}

/** What the page says about syncing (the connection's status itself comes from the client: `useConnectionStatus`). */
export interface ConnectionState {
  /** Shown when a stream could not be synced; cleared when it syncs again. */
  readonly syncFailure: SyncBanner | null;
  readonly lastSyncedAt: number | null;
  readonly forceSyncing: boolean;
  /** The clock panels read ages from; ticks once a second (not per event). */
  readonly now: number;
}

export type PanelId =
  | 'portfolio'
  | 'balances'
  | 'positions'
  | 'orders'
  | 'signals'
  | 'patterns'
  | 'strategies'
  | 'indicators'
  | 'chart'
  | 'alerts'
  | 'debug';

export const PANELS: ReadonlyArray<{ id: PanelId; title: string }> = [
  { id: 'portfolio', title: 'Portfolio' },
  { id: 'chart', title: 'Chart' },
  { id: 'positions', title: 'Positions' },
  { id: 'orders', title: 'Open orders' },
  { id: 'signals', title: 'Signals' },
  { id: 'balances', title: 'Balances' },
  { id: 'patterns', title: 'Patterns' },
  { id: 'strategies', title: 'Strategies' },
  { id: 'indicators', title: 'Indicators' },
  { id: 'alerts', title: 'Alerts' },
  { id: 'debug', title: 'Debug' },
];

export interface Settings {
  readonly theme: 'dark' | 'light';
  readonly toasts: boolean;
  readonly panels: Readonly<Record<PanelId, boolean>>;
  readonly chartSymbol: string;
}

export const DEFAULT_SETTINGS: Settings = {
  theme: 'dark',
  toasts: true,
  panels: Object.fromEntries(PANELS.map((p) => [p.id, p.id !== 'debug'])) as Record<PanelId, boolean>,
  chartSymbol: 'BTC-USD',
};

/** What a user did to a row and how it went (optimistic commands). */
export interface CommandMark {
  readonly commandId: string;
  readonly action: string;
  /** The signal or order the command acts on. */
  readonly target: string;
  readonly phase: 'pending' | 'confirmed' | 'rolled_back';
  readonly message?: string;
  readonly at: number;
}

export interface UiState {
  /** The signal whose details are open. */
  readonly selectedSignal: string | null;
  /** The latest command per target id. */
  readonly commands: Readonly<Record<string, CommandMark>>;
}

export interface DebugMessage {
  readonly at: number;
  readonly type: string;
  readonly stream?: string;
  readonly offset?: number;
  /** The message as received (stringified only for the rows on screen). */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface DebugState {
  readonly messages: readonly DebugMessage[];
  readonly eventsPerSecond: number;
  /** Server timestamp → message received, ms (median of the last second). */
  readonly wireLatencyMs: number | null;
  /** Server timestamp → on screen, ms (median of the last second). */
  readonly screenLatencyMs: number | null;
  readonly offsets: ReadonlyArray<{
    stream: string;
    epoch: string | null;
    offset: number;
    synced: boolean;
    /** The last offset a checksum proved, and when; null before the first. */
    verifiedOffset: number | null;
    verifiedAt: number | null;
    stale: boolean;
  }>;
  readonly frames: number;
}

/** The debug store while no recorder runs (the panel closed, no probe). */
export function emptyDebugState(): DebugState {
  return { messages: [], eventsPerSecond: 0, wireLatencyMs: null, screenLatencyMs: null, offsets: [], frames: 0 };
}

const SETTINGS_KEY = 'tradesync.settings';

export function loadSettings(storage: Pick<Storage, 'getItem'> | undefined): Settings {
  try {
    const raw = storage?.getItem(SETTINGS_KEY);
    if (!raw) return DEFAULT_SETTINGS;
    const parsed = JSON.parse(raw) as Partial<Settings>;
    return {
      theme: parsed.theme === 'light' ? 'light' : 'dark',
      toasts: parsed.toasts !== false,
      panels: { ...DEFAULT_SETTINGS.panels, ...(parsed.panels ?? {}) },
      chartSymbol: typeof parsed.chartSymbol === 'string' ? parsed.chartSymbol : DEFAULT_SETTINGS.chartSymbol,
    };
  } catch {
    return DEFAULT_SETTINGS;
  }
}

export function saveSettings(storage: Pick<Storage, 'setItem'> | undefined, settings: Settings): void {
  try {
    storage?.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // Private mode or full storage: the settings live for this page only.
  }
}

export interface Stores {
  readonly data: StoreApi<DataState>;
  readonly connection: StoreApi<ConnectionState>;
  readonly settings: StoreApi<Settings>;
  readonly ui: StoreApi<UiState>;
  readonly debug: StoreApi<DebugState>;
}

export function createStores(initial: { account: string; settings: Settings; now: number }): Stores {
  return {
    data: createStore<DataState>()(() => ({ account: initial.account, ...emptyAccountStreams(), market: {}, frame: 0 })),
    connection: createStore<ConnectionState>()(() => ({
      syncFailure: null,
      lastSyncedAt: null,
      forceSyncing: false,
      now: initial.now,
    })),
    settings: createStore<Settings>()(() => initial.settings),
    ui: createStore<UiState>()(() => ({ selectedSignal: null, commands: {} })),
    debug: createStore<DebugState>()(emptyDebugState),
  };
}

