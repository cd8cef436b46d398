import type { Logger } from '@tradesync/client';
import { parseStream, type StreamEvent } from '@tradesync/protocol';
import { EMA_INDICATOR, type ChartSeries } from './series.js';

/**
 * The price chart's lines: live price ticks and EMA values go to the chart's series
 * as they arrive, and once per stream, when it first syncs, its recent history is
 * read over REST (the events before the snapshot) so the chart does not start empty
 * on every page load.
 */

/** The event fields a chart point reads. */
export type ChartEvent = Pick<StreamEvent, 'type' | 'offset' | 'timestamp' | 'data'>;

/**
 * Reads a stream's logged events after an offset (`GET /api/v1/streams/<stream>/events`).
 * The SDK's `TradeSyncClient.readEvents` is one: it builds the request, sends the
 * token and validates the body; its result also carries `stream`, `epoch`, `head`
 * and `firstOffset`, which the chart does not need. When the events asked for are no
 * longer kept it rejects with a `HistoryTrimmedError` that says where history starts.
 */
export interface EventsReader {
  readEvents(stream: string, options: { after: number; limit?: number }): Promise<{ readonly events: readonly ChartEvent[] }>;
}

interface ChartFeedOptions {
  readonly chart: ChartSeries;
  /** Asks for a frame: the next one calls `chart.notify()`. */
  readonly schedule: () => void;
  /** No history without one; the live lines still draw. */
  readonly events?: EventsReader;
  readonly logger?: Pick<Logger, 'warn'>;
}

/** Events read back per stream: 25 minutes of one tick a second; EMA values of five symbols. */
export const BACKFILL_LIMIT = { market: 1500, indicators: 5000 } as const;

export class ChartFeed {
  readonly #options: ChartFeedOptions;
  /** Streams whose history was read (or is being read), each with the token of that read. */
  readonly #backfills = new Map<string, symbol>();

  constructor(options: ChartFeedOptions) {
    this.#options = options;
  }

  /** A live event: a price tick or an EMA value becomes a point (true when it was one). */
  onEvent(event: ChartEvent): boolean {
    if (!this.#point(event)) return false;
    this.#options.schedule();
    return true;
  }

  /**
   * Reads `stream`'s history up to `offset` (where its replica stands now) once; later
   * calls for the same stream do nothing. Only market and indicator streams have lines.
   */
  backfill(stream: string, offset: number): void {
    const reader = this.#options.events;
    const kind = parseStream(stream)?.kind;
    if (!reader || (kind !== 'market' && kind !== 'indicators') || this.#backfills.has(stream)) return;
    const token = Symbol(stream);
    this.#backfills.set(stream, token);
    const limit = BACKFILL_LIMIT[kind];
    const read = (after: number, retry: boolean): void => {
      reader.readEvents(stream, { after, limit }).then(
        ({ events }) => {
          // The account may have changed while this was in flight: its EMA lines are gone.
          if (this.#backfills.get(stream) !== token) return;
          for (const event of events) {
            // Later events are live ones the line already has.
            if (event.offset > offset) break;
            this.#point(event);
          }
          this.#options.schedule();
        },
        (error: unknown) => {
          if (this.#backfills.get(stream) !== token) return;
          // Older events than we asked for are gone (a long-lived gateway): draw what is still kept.
          const first = trimmedAt(error);
          if (retry && first !== undefined && first - 1 > after && first <= offset) return read(first - 1, false);
          // Nothing kept before the replica's offset: no history to draw, and nothing wrong.
          if (first !== undefined) return;
          // History is a nicety: the live line still draws. Say why it is missing.
          this.#options.logger?.warn('chart history could not be read', { stream, error: error instanceof Error ? error.message : String(error) });
        },
      );
    };
    read(Math.max(0, offset - limit), true);
  }

  /** The page left `account`: its EMA lines go, and coming back reads their history again. */
  forgetAccount(account: string): void {
    this.#backfills.delete(`indicators:${account}`);
    this.#options.chart.clearIndicators();
  }

  #point(event: ChartEvent): boolean {
    const { data } = event;
    if (event.type === 'market:tick') this.#options.chart.price(String(data.symbol)).push(pointTime(event), data.price);
    else if (event.type === 'indicator:updated' && data.name === EMA_INDICATOR) this.#options.chart.ema(String(data.symbol)).push(pointTime(event), data.value);
    else return false;
    return true;
  }
}

/** Where a stream's kept history starts, when `error` is the SDK's `HistoryTrimmedError` saying so. */
function trimmedAt(error: unknown): number | undefined {
  if (!(error instanceof Error) || error.name !== 'HistoryTrimmedError' || !('firstOffset' in error)) return undefined;
  return typeof error.firstOffset === 'number' ? error.firstOffset : undefined;
}

/** A chart point's time: the producer's own when it gives one, else the event's. */
const pointTime = (event: ChartEvent): number => Date.parse(typeof event.data.timestamp === 'string' ? event.data.timestamp : event.timestamp);
