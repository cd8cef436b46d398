import type { StreamHandle } from '@tradesync/client';
import {
  ACCOUNT_STREAM_KINDS,
  parseStream,
  type AccountStreamKind,
  type MarketState,
  type PortfolioState,
  type StreamEvent,
  type StreamState,
} from '@tradesync/protocol';
import type { StoreApi } from 'zustand/vanilla';
import { emptyAccountStreams, SYMBOLS, type DataState, type DebugState, type StreamSlice } from './stores.js';

/**
 * Market prices and indicators arrive conflated at this rate (events a second): a
 * person reads no faster, and a price never waits behind older ones in a queue.
 */
export const READABLE_RATE = 10;

/**
 * Subscriptions → the data store, once per frame. The feed subscribes the public
 * markets and the chosen account's streams on the page's one client and keeps each
 * stream's replica state in the data store — replaced whole, never patched, so a
 * snapshot after a resync replaces everything. A change only marks the stream; its
 * state is read (and so reduced, in one batch for the whole frame) when the frame
 * flushes. React only reads the store.
 */

/** The part of the client the feed uses (the SDK's `TradeSyncClient` is one). */
export interface StreamSource {
  subscribe(stream: string, listener: { onChange?(): void; onEvent?(event: StreamEvent): void }, params?: { maxRate?: number }): StreamHandle;
}

interface StreamFeedOptions {
  readonly source: StreamSource;
  readonly data: StoreApi<DataState>;
  /** Asks for a frame: the next one calls `flush`. */
  readonly schedule: () => void;
  readonly now: () => number;
  /** Every live event of every stream the feed holds, as it arrives. */
  readonly onEvent: (event: StreamEvent) => void;
  /** A stream that was already synced when subscribed (shared with another listener): no `synced` will come for it. */
  readonly onAlreadySynced: (stream: string) => void;
  /** Called with the frame number just before a flush writes the store. */
  readonly onFrame?: (frame: number) => void;
}

/** What a flush wrote. */
interface FeedFrame {
  readonly frame: number;
  /** The account's portfolio when it was among the streams written (heat warnings read it). */
  readonly portfolio?: PortfolioState;
}

type StreamOffsets = DebugState['offsets'];

export class StreamFeed {
  readonly #options: StreamFeedOptions;
  readonly #handles = new Map<string, StreamHandle>();
  /** Streams whose state changed since the last frame; their state is read at the frame. */
  #changed = new Set<string>();
  /** Streams whose freshness (stale or not) changed since the last frame, state or not. */
  #freshened = new Set<string>();

  constructor(options: StreamFeedOptions) {
    this.#options = options;
  }

  get account(): string {
    return this.#options.data.getState().account;
  }

  /** The streams held now (markets and the account's). */
  get streams(): string[] {
    return [...this.#handles.keys()];
  }

  start(): void {
    for (const symbol of SYMBOLS) this.#subscribe(`market:${symbol}`);
    this.#subscribeAccount(this.account);
  }

  dispose(): void {
    for (const handle of this.#handles.values()) handle.unsubscribe();
    this.#handles.clear();
    this.#changed.clear();
  }

  /** Leaves the previous account's streams, empties their slices and subscribes the new account's. */
  setAccount(account: string): void {
    const previous = this.account;
    if (account === previous) return;
    for (const kind of ACCOUNT_STREAM_KINDS) {
      const stream = `${kind}:${previous}`;
      this.#handles.get(stream)?.unsubscribe();
      this.#handles.delete(stream);
      this.#changed.delete(stream);
    }
    this.#options.data.setState({ account, ...emptyAccountStreams() });
    this.#subscribeAccount(account);
  }

  handle(stream: string): StreamHandle | undefined {
    return this.#handles.get(stream);
  }

  /** The replica's visible state (with pending optimistic changes), read now. */
  state<S extends StreamState>(stream: string): S | undefined {
    return this.#handles.get(stream)?.state as S | undefined;
  }

  /** Every stream's position and what the server proved of it, for the debug panel. */
  offsets(): StreamOffsets {
    return [...this.#handles.values()].map((h) => {
      const { verifiedOffset, verifiedAt, stale } = h.freshness;
      return { stream: h.stream, epoch: h.position?.epoch ?? null, offset: h.position?.offset ?? 0, synced: h.synced, verifiedOffset: verifiedOffset ?? null, verifiedAt: verifiedAt ?? null, stale };
    });
  }

  /** A stream turned stale or fresh: its panel shows it at the next frame. */
  markFreshness(stream: string): void {
    if (!this.#handles.has(stream)) return;
    this.#freshened.add(stream);
    this.#options.schedule();
  }

  /** Writes the streams that changed since the last frame, in one store update; undefined when none did. */
  flush(): FeedFrame | undefined {
    if (this.#changed.size === 0 && this.#freshened.size === 0) return undefined;
    const now = this.#options.now();
    const current = this.#options.data.getState();
    const patch: { -readonly [K in keyof DataState]?: DataState[K] } = {};
    let market: Record<string, StreamSlice<MarketState>> | undefined;
    let portfolio: PortfolioState | undefined;
    for (const stream of new Set([...this.#changed, ...this.#freshened])) {
      const ref = parseStream(stream);
      const handle = this.#handles.get(stream);
      if (!ref || !handle) continue;
      const changed = this.#changed.has(stream);
      const previous = ref.kind === 'market' ? current.market[ref.symbol] : ref.account === current.account ? current[ref.kind] : undefined;
      const state = changed || !previous ? handle.state : previous.state;
      const { stale, lastPositionAt } = handle.freshness;
      const slice = {
        state,
        updatedAt: changed || !previous ? now : previous.updatedAt,
        synced: handle.synced,
        offset: handle.position?.offset ?? 0,
        stale,
        heardAt: lastPositionAt ?? null,
      };
      if (ref.kind === 'market') {
        market ??= { ...current.market };
        market[ref.symbol] = slice as StreamSlice<MarketState>;
      } else if (ref.account === current.account) {
        (patch as Record<AccountStreamKind, unknown>)[ref.kind] = slice;
        if (ref.kind === 'portfolio' && changed) portfolio = state as PortfolioState;
      }
    }
    this.#changed = new Set();
    this.#freshened = new Set();
    if (market) patch.market = market;
    const frame = current.frame + 1;
    patch.frame = frame;
    this.#options.onFrame?.(frame);
    this.#options.data.setState(patch);
    return portfolio ? { frame, portfolio } : { frame };
  }

  #subscribeAccount(account: string): void {
    for (const kind of ACCOUNT_STREAM_KINDS) this.#subscribe(`${kind}:${account}`);
  }

  #subscribe(stream: string): void {
    if (this.#handles.has(stream)) return;
    const kind = parseStream(stream)?.kind;
    const handle = this.#options.source.subscribe(
      stream,
      { onChange: () => this.#markChanged(stream), onEvent: this.#options.onEvent },
      kind === 'market' || kind === 'indicators' ? { maxRate: READABLE_RATE } : {},
    );
    this.#handles.set(stream, handle);
    // A stream already synced (shared with someone else) shows at once.
    if (handle.synced) {
      this.#markChanged(stream);
      this.#options.onAlreadySynced(stream);
    }
  }

  #markChanged(stream: string): void {
    this.#changed.add(stream);
    this.#options.schedule();
  }
}
