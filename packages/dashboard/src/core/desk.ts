import type { Logger, TradeSyncClient } from '@tradesync/client';
import type { SignalsState, StreamEvent } from '@tradesync/protocol';
import { ChartFeed, type EventsReader } from './chart-feed.js';
import { CommandDesk } from './command-desk.js';
import { DebugRecorder } from './debug-recorder.js';
import { createFrameCoalescer, type FrameCoalescer, type FramePacing, type RequestFrame } from './frame.js';
import type { Notifications } from './notifications.js';
import type { ChartSeries } from './series.js';
import { emptyDebugState, type Stores } from './stores.js';
import { StreamFeed } from './stream-feed.js';
import { SyncAnnouncer } from './sync-announcer.js';

/**
 * The desk: the one place where the SDK meets the stores. It composes the parts, each
 * one concept:
 *
 * - `StreamFeed`: subscriptions → the data store, once per frame;
 * - `SyncAnnouncer`: the connection store, "State synchronized", the sync-failure banner;
 * - `CommandDesk`: optimistic execute / reject / cancel through the SDK;
 * - `ChartFeed`: the chart's lines, live and backfilled over the SDK's `readEvents`;
 * - `DebugRecorder`: the debug panel and latency probe, built only while one is on.
 *
 * However fast events come, the stores are written at most once per animation frame
 * (and no more often than `pacing` allows). React only reads the stores.
 */
/** The part of the SDK's client the desk uses. */
export type DeskClient = Pick<TradeSyncClient, 'status' | 'on' | 'subscribe' | 'command' | 'forceSync'>;

export interface DeskOptions {
  readonly client: DeskClient;
  readonly stores: Stores;
  readonly notifications: Notifications;
  readonly chart: ChartSeries;
  readonly requestFrame: RequestFrame;
  /** Flush no more often than this (see `createFrameCoalescer`); every frame without it. */
  readonly pacing?: FramePacing;
  readonly now?: () => number;
  /** For the chart's history (`GET /api/v1/streams/…/events`); no history without it. */
  readonly events?: EventsReader;
  readonly logger?: Pick<Logger, 'warn'>;
  /** Keep every event-to-screen latency on `window` for the benchmark. */
  readonly probe?: { latencies: number[] };
}

/** Frame keys: which store a flush must write. */
type Dirty = 'data' | 'chart';

export class Desk {
  readonly #options: DeskOptions;
  readonly #stores: Stores;
  readonly #now: () => number;
  readonly #frames: FrameCoalescer<Dirty>;
  readonly #feed: StreamFeed;
  readonly #sync: SyncAnnouncer;
  readonly #commands: CommandDesk;
  readonly #chart: ChartFeed;
  #recorder: DebugRecorder | undefined;
  #offRecorder: (() => void) | undefined;
  readonly #offs: Array<() => void> = [];
  #clock: ReturnType<typeof setInterval> | undefined;

  constructor(options: DeskOptions) {
    const { client, stores, notifications } = options;
    this.#options = options;
    this.#stores = stores;
    this.#now = options.now ?? Date.now;
    const now = this.#now;
    this.#frames = createFrameCoalescer((keys) => this.#flush(keys), options.requestFrame, options.pacing);
    this.#chart = new ChartFeed({
      chart: options.chart,
      schedule: () => this.#frames.schedule('chart'),
      ...(options.events ? { events: options.events } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    this.#feed = new StreamFeed({
      source: client,
      data: stores.data,
      schedule: () => this.#frames.schedule('data'),
      now,
      onEvent: (event) => this.#onEvent(event),
      // No "synced" will come for it: read its history now.
      onAlreadySynced: (stream) => this.#backfill(stream),
      onFrame: (frame) => this.#recorder?.frame(frame),
    });
    this.#sync = new SyncAnnouncer({
      connection: stores.connection,
      streams: () => this.#feed.streams,
      status: () => client.status,
      announce: (toast) => notifications.always(toast),
      forceSync: (streams) => client.forceSync(streams),
      now,
    });
    this.#commands = new CommandDesk({
      sender: client,
      ui: stores.ui,
      account: () => this.account,
      state: (stream) => this.#feed.state(stream),
      announce: (toast) => notifications.always(toast),
      now,
    });
  }

  get account(): string {
    return this.#feed.account;
  }

  start(): void {
    const { client, stores } = this.#options;
    this.#offs.push(
      client.on('status', (status, previous) => this.#sync.onStatus(status, previous)),
      client.on('synced', (info) => {
        this.#backfill(info.stream);
        this.#sync.onSynced(info.stream);
      }),
      client.on('sync_failed', (info) => this.#sync.onSyncFailed(info)),
      client.on('command', (update) => this.#commands.onUpdate(update)),
      client.on('freshness', (info) => this.#feed.markFreshness(info.stream)),
      stores.settings.subscribe((settings, previous) => {
        if (settings.panels.debug !== previous.panels.debug) this.#toggleRecorder();
      }),
      () => this.#stopRecorder(),
    );
    this.#toggleRecorder();
    this.#feed.start();
    this.#clock = setInterval(() => this.#tick(), 1000);
  }

  dispose(): void {
    clearInterval(this.#clock);
    for (const off of this.#offs.splice(0)) off();
    this.#feed.dispose();
  }

  setAccount(account: string): void {
    const previous = this.account;
    if (account === previous) return;
    this.#chart.forgetAccount(previous);
    this.#stores.ui.setState({ selectedSignal: null, commands: {} });
    this.#sync.clearFailure();
    this.#feed.setAccount(account);
  }

  /** Fresh snapshots (of the failed streams only while the banner names some); "State synchronized" when all are back. */
  forceSync(): void {
    this.#sync.forceSync();
  }

  executeSignal(id: string): void {
    this.#commands.executeSignal(id);
  }

  rejectSignal(id: string): void {
    this.#commands.rejectSignal(id);
  }

  cancelOrder(id: string): void {
    this.#commands.cancelOrder(id);
  }

  selectSignal(id: string | null): void {
    this.#stores.ui.setState({ selectedSignal: id });
  }

  /**
   * Called by the page once a frame is on screen (a layout effect): every event that
   * frame carried is now visible, so its event-to-screen latency is known.
   */
  committed(frame: number): void {
    this.#recorder?.committed(frame);
  }

  #onEvent(event: StreamEvent): void {
    this.#recorder?.event(event);
    if (this.#chart.onEvent(event)) return;
    if (event.stream === `signals:${this.account}`) this.#options.notifications.onEvent(event, this.#signalSymbol);
  }

  /** For a toast whose event lacks the symbol; called only when the toast will show (it reduces the state). */
  readonly #signalSymbol = (id: string): string | undefined => this.#feed.state<SignalsState>(`signals:${this.account}`)?.signals[id]?.symbol;

  #backfill(stream: string): void {
    const handle = this.#feed.handle(stream);
    if (handle?.synced) this.#chart.backfill(stream, handle.position?.offset ?? 0);
  }

  #flush(keys: ReadonlySet<Dirty>): void {
    if (keys.has('data')) {
      const written = this.#feed.flush();
      if (written?.portfolio) this.#options.notifications.onPortfolio(written.portfolio);
    }
    if (keys.has('chart')) this.#options.chart.notify();
  }

  #tick(): void {
    this.#sync.tick();
    const recorder = this.#recorder;
    if (!recorder) return;
    const withMessages = this.#stores.settings.getState().panels.debug;
    this.#stores.debug.setState(recorder.report({ offsets: this.#feed.offsets(), frames: this.#frames.frames, withMessages }));
  }

  /** A recorder exists exactly while the debug panel is open or the probe is on. */
  #toggleRecorder(): void {
    const wanted = this.#options.probe !== undefined || this.#stores.settings.getState().panels.debug;
    if (wanted && !this.#recorder) {
      const recorder = new DebugRecorder({ now: this.#now, ...(this.#options.probe ? { probe: this.#options.probe } : {}) });
      this.#recorder = recorder;
      this.#offRecorder = this.#options.client.on('message', (message) => recorder.message(message));
    } else if (!wanted) {
      this.#stopRecorder();
    }
  }

  #stopRecorder(): void {
    if (!this.#recorder) return;
    this.#offRecorder?.();
    this.#offRecorder = undefined;
    this.#recorder = undefined;
    this.#stores.debug.setState(emptyDebugState());
  }
}
