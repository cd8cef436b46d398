import type { ClientStatus, LiveEvent, StreamHandle, SyncedInfo, SyncFailedInfo, TradeSyncClient } from '@tradesync/client';
import {
  ACCOUNT_STREAM_KINDS,
  parseStream,
  type AccountStreamKind,
  type MarketState,
  type OrdersState,
  type PortfolioState,
  type SignalsState,
  type StreamState,
} from '@tradesync/protocol';
import { createFrameCoalescer, type FrameCoalescer, type FramePacing, type RequestFrame } from './frame.js';
import type { Notifications } from './notifications.js';
import { EMA_INDICATOR, type ChartSeries } from './series.js';
import { emptyAccountStreams, SYMBOLS, type DataState, type DebugMessage, type StreamSlice, type Stores } from './stores.js';

/**
 * The desk: the one place where the SDK meets the stores. It subscribes the streams
 * of the chosen account (and the public markets) on the page's one client, keeps
 * each stream's replica state in the data store — replaced whole, never patched, so
 * a snapshot after a resync replaces everything — and writes the stores at most
 * once per animation frame (and no more often than `pacing` allows) however fast
 * events come. React only reads the stores.
 */
export interface DeskOptions {
  readonly client: TradeSyncClient;
  readonly stores: Stores;
  readonly notifications: Notifications;
  readonly chart: ChartSeries;
  readonly requestFrame: RequestFrame;
  /** Flush no more often than this (see `createFrameCoalescer`); every frame without it. */
  readonly pacing?: FramePacing;
  readonly now?: () => number;
  /** For the chart's history backfill over REST (`GET /api/v1/streams/…/events`). */
  readonly fetch?: typeof fetch;
  readonly httpBase?: string;
  /** Keep every event-to-screen latency on `window` for the benchmark. */
  readonly probe?: { latencies: number[] };
}

const DEBUG_MESSAGES = 200;
const PROBE_LIMIT = 200_000;
/** Frame keys: which store a flush must write. */
type Dirty = 'data' | 'status' | 'chart';

interface SyncRound {
  readonly pending: Set<string>;
  failed: boolean;
}

export class Desk {
  readonly #client: TradeSyncClient;
  readonly #stores: Stores;
  readonly #notify: Notifications;
  readonly #chart: ChartSeries;
  readonly #now: () => number;
  readonly #frames: FrameCoalescer<Dirty>;
  readonly #handles = new Map<string, StreamHandle>();
  /** States received since the last frame, by stream (only the latest counts). */
  /** Streams whose state changed since the last frame; their state is read (and reduced) at the frame. */
  #changedStreams = new Set<string>();
  /** Server timestamps of the events received since the last frame. */
  #pendingEventTimes: number[] = [];
  /** Event times waiting for the frame that shows them to be committed. */
  readonly #frameEventTimes = new Map<number, number[]>();
  #round: SyncRound | undefined;
  #wasConnected = false;
  #lostConnection = false;
  readonly #commandTargets = new Map<string, { action: string; target: string; label: string }>();
  readonly #messages: Array<Record<string, unknown>> = new Array<Record<string, unknown>>(DEBUG_MESSAGES);
  readonly #messageTimes: number[] = new Array<number>(DEBUG_MESSAGES).fill(0);
  #messageHead = 0;
  #messageCount = 0;
  #eventCount = 0;
  #wireSamples: number[] = [];
  #screenSamples: number[] = [];
  readonly #offs: Array<() => void> = [];
  #clock: ReturnType<typeof setInterval> | undefined;
  #backfilled = new Set<string>();

  constructor(private readonly options: DeskOptions) {
    this.#client = options.client;
    this.#stores = options.stores;
    this.#notify = options.notifications;
    this.#chart = options.chart;
    this.#now = options.now ?? Date.now;
    this.#frames = createFrameCoalescer((keys) => this.#flush(keys), options.requestFrame, options.pacing);
  }

  get account(): string {
    return this.#stores.data.getState().account;
  }

  start(): void {
    const client = this.#client;
    this.#offs.push(
      client.on('status', (status, previous) => this.#onStatus(status, previous)),
      client.on('synced', (info) => this.#onSynced(info)),
      client.on('sync_failed', (info) => this.#onSyncFailed(info)),
      client.on('message', (message) => this.#onMessage(message)),
      client.on('command', (update) => {
        const target = this.#commandTargets.get(update.commandId);
        if (!target) return;
        const mark = { commandId: update.commandId, action: update.action, target: target.target, phase: update.phase, message: update.error?.message, at: this.#now() };
        this.#stores.ui.setState((ui) => ({ commands: { ...ui.commands, [target.target]: mark } }));
        if (update.phase === 'rolled_back') {
          this.#notify.always({ kind: 'error', title: `${target.label} failed`, description: update.error?.message ?? 'rolled back' });
        }
        if (update.phase !== 'pending') this.#commandTargets.delete(update.commandId);
      }),
    );
    this.#wasConnected = client.status.state === 'connected';
    for (const symbol of SYMBOLS) this.#subscribe(`market:${symbol}`);
    this.#subscribeAccount(this.account);
    this.#clock = setInterval(() => this.#tick(), 1000);
  }

  dispose(): void {
    clearInterval(this.#clock);
    for (const off of this.#offs.splice(0)) off();
    for (const handle of this.#handles.values()) handle.unsubscribe();
    this.#handles.clear();
  }

  /* ------------------------------------------------------------------ streams */

  setAccount(account: string): void {
    const previous = this.account;
    if (account === previous) return;
    for (const kind of ACCOUNT_STREAM_KINDS) {
      const stream = `${kind}:${previous}`;
      this.#handles.get(stream)?.unsubscribe();
      this.#handles.delete(stream);
      this.#changedStreams.delete(stream);
      // Its EMA lines are cleared below: coming back must fetch their history again.
      this.#backfilled.delete(stream);
    }
    this.#chart.clearIndicators();
    this.#stores.data.setState({ account, ...emptyAccountStreams() });
    this.#stores.ui.setState({ selectedSignal: null, commands: {} });
    this.#stores.connection.setState({ syncFailure: null });
    this.#subscribeAccount(account);
  }

  #subscribeAccount(account: string): void {
    for (const kind of ACCOUNT_STREAM_KINDS) this.#subscribe(`${kind}:${account}`);
  }

  #subscribe(stream: string): void {
    if (this.#handles.has(stream)) return;
    const handle = this.#client.subscribe(stream, {
      onChange: () => {
        this.#changedStreams.add(stream);
        this.#frames.schedule('data');
      },
      onEvent: (event) => this.#onEvent(event),
    });
    this.#handles.set(stream, handle);
    // A stream already synced (shared with someone else) shows at once; no "synced" will come to backfill it.
    if (handle.synced) {
      this.#changedStreams.add(stream);
      this.#frames.schedule('data');
      this.#backfill(stream);
    }
  }

  #onEvent(event: LiveEvent): void {
    this.#eventCount++;
    const at = Date.parse(event.timestamp);
    if (!Number.isNaN(at)) this.#pendingEventTimes.push(at);
    if (this.#chartPoint(event)) this.#frames.schedule('chart');
    else if (event.stream === `signals:${this.account}`) this.#notify.onEvent(event, this.#signalSymbol);
  }

  /** A price tick or an EMA value goes to the chart's line (true when it was one). */
  #chartPoint(event: LiveEvent): boolean {
    const data = event.data;
    if (event.type === 'market:tick') this.#chart.price(String(data.symbol)).push(pointTime(event), data.price);
    else if (event.type === 'indicator:updated' && data.name === EMA_INDICATOR) this.#chart.ema(String(data.symbol)).push(pointTime(event), data.value);
    else return false;
    return true;
  }

  /** For a toast whose event lacks the symbol; called only when the toast will show (it reduces the state). */
  readonly #signalSymbol = (id: string): string | undefined => (this.#handles.get(`signals:${this.account}`)?.state as SignalsState | undefined)?.signals[id]?.symbol;

  /* ------------------------------------------------------------------ frames */

  #flush(keys: ReadonlySet<Dirty>): void {
    const now = this.#now();
    if (keys.has('data') && this.#changedStreams.size > 0) {
      const current = this.#stores.data.getState();
      const patch: { -readonly [K in keyof DataState]?: DataState[K] } = {};
      let market: Record<string, StreamSlice<MarketState>> | undefined;
      let portfolio: PortfolioState | undefined;
      for (const stream of this.#changedStreams) {
        const ref = parseStream(stream);
        const handle = this.#handles.get(stream);
        if (!ref || !handle) continue;
        const state = handle.state;
        const slice = { state, updatedAt: now, synced: handle.synced, offset: handle.position?.offset ?? 0 };
        if (ref.kind === 'market') {
          market ??= { ...current.market };
          market[ref.symbol] = slice as StreamSlice<MarketState>;
        } else if (ref.account === current.account) {
          (patch as Record<AccountStreamKind, unknown>)[ref.kind] = slice;
          if (ref.kind === 'portfolio') portfolio = state as PortfolioState;
        }
      }
      this.#changedStreams = new Set();
      if (market) patch.market = market;
      const frame = current.frame + 1;
      patch.frame = frame;
      if (this.#pendingEventTimes.length > 0) {
        this.#frameEventTimes.set(frame, this.#pendingEventTimes);
        this.#pendingEventTimes = [];
      }
      this.#stores.data.setState(patch);
      if (portfolio) this.#notify.onPortfolio(portfolio);
    }
    if (keys.has('status')) this.#stores.connection.setState({ status: this.#client.status });
    if (keys.has('chart')) this.#chart.notify();
  }

  /**
   * Called by the page once a frame is on screen (a layout effect): every event that
   * frame carried is now visible, so its event-to-screen latency is known.
   */
  committed(frame: number): void {
    const now = this.#now();
    for (const [f, times] of this.#frameEventTimes) {
      if (f > frame) continue;
      for (const t of times) {
        const latency = now - t;
        this.#screenSamples.push(latency);
        const probe = this.options.probe;
        if (probe) {
          probe.latencies.push(latency);
          if (probe.latencies.length > PROBE_LIMIT) probe.latencies.splice(0, PROBE_LIMIT / 2);
        }
      }
      this.#frameEventTimes.delete(f);
    }
    if (this.#screenSamples.length > 5000) this.#screenSamples = this.#screenSamples.slice(-1000);
  }

  /* ------------------------------------------------------------------ connection and sync */

  #onStatus(status: ClientStatus, previous: ClientStatus): void {
    if (status.state !== previous.state) {
      if (previous.state === 'connected') this.#lostConnection = true;
      if (status.state === 'connected') {
        // A reconnect: every stream resyncs; when all are done the page says so.
        if (this.#wasConnected && this.#lostConnection) this.#startRound();
        this.#wasConnected = true;
        this.#lostConnection = false;
      }
      // A state change shows now, not a frame later: the announcement must not wait.
      this.#stores.connection.setState({ status });
      return;
    }
    this.#frames.schedule('status');
  }

  #startRound(): void {
    this.#round = { pending: new Set(this.#handles.keys()), failed: false };
  }

  #onSynced(info: SyncedInfo): void {
    this.#backfill(info.stream);
    const failure = this.#stores.connection.getState().syncFailure;
    if (failure?.streams.includes(info.stream)) {
      const streams = failure.streams.filter((s) => s !== info.stream);
      this.#stores.connection.setState({ syncFailure: streams.length > 0 ? { ...failure, streams } : null });
    }
    const round = this.#round;
    if (!round) return;
    round.pending.delete(info.stream);
    if (round.pending.size === 0) {
      this.#round = undefined;
      const stillFailing = this.#stores.connection.getState().syncFailure !== null;
      if (!stillFailing) {
        this.#stores.connection.setState({ lastSyncedAt: this.#now(), forceSyncing: false });
        this.#notify.always({ kind: 'success', title: 'State synchronized', description: 'Every panel shows the server’s current state.' });
      }
    }
  }

  #onSyncFailed(info: SyncFailedInfo): void {
    const failure = this.#stores.connection.getState().syncFailure;
    const streams = [...new Set([...(failure?.streams ?? []), info.stream])];
    this.#stores.connection.setState({
      syncFailure: { streams, message: `Could not synchronize ${streams.join(', ')}: ${info.error.message}` },
      forceSyncing: false,
    });
    if (this.#round) {
      this.#round.failed = true;
      this.#round.pending.delete(info.stream);
      if (this.#round.pending.size === 0) this.#round = undefined;
    }
  }

  /** Fresh snapshots of every stream; "State synchronized" when all are back. */
  forceSync(): void {
    this.#startRound();
    this.#stores.connection.setState({ forceSyncing: true });
    this.#client.forceSync().then(
      () => this.#stores.connection.setState({ forceSyncing: false }),
      () => this.#stores.connection.setState({ forceSyncing: false }),
    );
  }

  reconnectNow(): void {
    this.#client.reconnectNow();
  }

  /* ------------------------------------------------------------------ commands */

  executeSignal(id: string): void {
    this.#signalCommand('execute_signal', id, 'execute', 'Execute');
  }

  rejectSignal(id: string): void {
    this.#signalCommand('reject_signal', id, 'reject', 'Reject');
  }

  #signalCommand(action: string, id: string, pending: string, verb: string): void {
    const stream = `signals:${this.account}`;
    const symbol = (this.#handles.get(stream)?.state as SignalsState | undefined)?.signals[id]?.symbol;
    this.#command(action, id, `${verb} ${symbol ?? id}`, { signal_id: id }, stream, (state) => {
      const s = state as SignalsState;
      const signal = s.signals[id];
      if (!signal) return state;
      return { ...s, signals: { ...s.signals, [id]: { ...signal, pending_action: pending } } };
    });
  }

  cancelOrder(id: string): void {
    const stream = `orders:${this.account}`;
    const order = (this.#handles.get(stream)?.state as OrdersState | undefined)?.orders[id];
    this.#command('cancel_order', id, `Cancel ${order?.symbol ?? id}`, { order_id: id }, stream, (state) => {
      const s = state as OrdersState;
      const o = s.orders[id];
      if (!o) return state;
      return { orders: { ...s.orders, [id]: { ...o, pending_action: 'cancel' } } };
    });
  }

  #command(action: string, target: string, label: string, payload: Record<string, unknown>, stream: string, apply: (state: StreamState) => StreamState): void {
    const commandId = `ui-${action}-${target}-${this.#now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    this.#commandTargets.set(commandId, { action, target, label });
    this.#client.command(action, payload, { account: this.account, commandId, optimistic: { stream, apply } }).catch(() => {
      // The rollback (and its message) came through the `command` event.
    });
  }

  selectSignal(id: string | null): void {
    this.#stores.ui.setState({ selectedSignal: id });
  }

  /* ------------------------------------------------------------------ debug */

  #onMessage(message: Record<string, unknown>): void {
    // A thousand messages a second: keep only the reference and its time (a ring, no
    // copies); the debug rows are built once a second, and only while the panel is open.
    const at = this.#now();
    this.#messages[this.#messageHead] = message;
    this.#messageTimes[this.#messageHead] = at;
    this.#messageHead = (this.#messageHead + 1) % DEBUG_MESSAGES;
    if (this.#messageCount < DEBUG_MESSAGES) this.#messageCount++;
    if (typeof message.timestamp === 'string' && this.#wireSamples.length < 5000) {
      const sent = Date.parse(message.timestamp);
      if (!Number.isNaN(sent)) this.#wireSamples.push(at - sent);
    }
  }

  /** The last messages, oldest first, as the debug panel lists them. */
  #debugMessages(): DebugMessage[] {
    const out: DebugMessage[] = [];
    const start = (this.#messageHead - this.#messageCount + DEBUG_MESSAGES) % DEBUG_MESSAGES;
    for (let k = 0; k < this.#messageCount; k++) {
      const i = (start + k) % DEBUG_MESSAGES;
      const message = this.#messages[i]!;
      out.push({
        at: this.#messageTimes[i]!,
        type: String(message.type),
        ...(typeof message.stream === 'string' ? { stream: message.stream } : {}),
        ...(typeof message.offset === 'number' ? { offset: message.offset } : {}),
        raw: message,
      });
    }
    return out;
  }

  #tick(): void {
    const now = this.#now();
    // The client updates last-message time and sequence number silently: refresh them here.
    this.#stores.connection.setState({ now, status: this.#client.status });
    const offsets = [...this.#handles.values()].map((h) => ({
      stream: h.stream,
      epoch: h.position?.epoch ?? null,
      offset: h.position?.offset ?? 0,
      synced: h.synced,
    }));
    this.#stores.debug.setState({
      messages: this.#stores.settings.getState().panels.debug ? this.#debugMessages() : [],
      eventsPerSecond: this.#eventCount,
      wireLatencyMs: median(this.#wireSamples),
      screenLatencyMs: median(this.#screenSamples),
      offsets,
      frames: this.#frames.frames,
    });
    this.#eventCount = 0;
    this.#wireSamples = [];
    this.#screenSamples = [];
  }

  /* ------------------------------------------------------------------ chart history */

  /**
   * The chart would start empty on every page load: once per stream, when it first
   * syncs, fetch its recent history over REST (the events before the snapshot) for
   * the price and EMA lines.
   */
  #backfill(stream: string): void {
    const handle = this.#handles.get(stream);
    const fetchImpl = this.options.fetch;
    if (!fetchImpl || !this.options.httpBase || !handle?.synced || this.#backfilled.has(stream)) return;
    const kind = parseStream(stream)?.kind;
    if (kind !== 'market' && kind !== 'indicators') return;
    this.#backfilled.add(stream);
    const offset = handle.position?.offset ?? 0;
    const limit = kind === 'market' ? 1500 : 5000;
    const after = Math.max(0, offset - limit);
    fetchImpl(`${this.options.httpBase}/api/v1/streams/${encodeURIComponent(stream)}/events?after=${after}&limit=${limit}`)
      .then(async (res) => {
        if (!res.ok) return;
        const body = (await res.json()) as { events?: LiveEvent[] };
        // The account may have changed while this was in flight: its EMA lines are gone.
        if (kind === 'indicators' && stream !== `indicators:${this.account}`) return;
        for (const event of body.events ?? []) {
          if (event.offset > offset) break;
          this.#chartPoint(event);
        }
        this.#frames.schedule('chart');
      })
      .catch(() => {
        // History is a nicety: the live line still draws.
      });
  }
}

/** A chart point's time: the producer's own when it gives one, else the event's. */
const pointTime = (event: LiveEvent) => Date.parse(String(event.data.timestamp ?? event.timestamp));

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
