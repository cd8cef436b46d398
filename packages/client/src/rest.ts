import { RestErrorBody, StreamEventsPage, type StreamEvent } from '@tradesync/protocol';
import { TradeSyncError } from './errors.js';

/** `ws://host:port/ws` → `http://host:port`. */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  return `${url.protocol}//${url.host}`;
}

/** A REST request of the SDK failed: an error status (with the server's code) or a body that is not what the contract says. */
export class HttpError extends TradeSyncError {
  override readonly name: string = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`HTTP ${status}: ${code}: ${message}`);
  }
}

/** 410 HISTORY_TRIMMED: the events asked for are no longer kept; take a snapshot instead. */
export class HistoryTrimmedError extends HttpError {
  override readonly name = 'HistoryTrimmedError';
  constructor(
    message: string,
    /** Where the stream's history now starts, when the server said. */
    readonly firstOffset: number | undefined,
    readonly head: number | undefined,
  ) {
    super(410, 'HISTORY_TRIMMED', message);
  }
}

export interface ReadEventsOptions {
  /** The offset to read after (0: from the start of the kept history). */
  readonly after: number;
  /** Most events in the page (the server's default is 1000, its maximum 10000). */
  readonly limit?: number;
}

export interface EventsPage {
  readonly stream: string;
  readonly epoch: string;
  /** The stream's last offset. */
  readonly head: number;
  /** The oldest offset still kept. */
  readonly firstOffset: number;
  readonly events: StreamEvent[];
}

/** `GET /api/v1/streams/<stream>/events?after=&limit=`, its body validated against the contract. */
export async function readEvents(fetchImpl: typeof fetch, base: string, token: string | undefined, stream: string, options: ReadEventsOptions): Promise<EventsPage> {
  const query = new URLSearchParams({ after: String(options.after) });
  if (options.limit !== undefined) query.set('limit', String(options.limit));
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await fetchImpl(`${base}/api/v1/streams/${encodeURIComponent(stream)}/events?${query}`, { headers });
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const failure = RestErrorBody.safeParse(body);
    const code = failure.success ? failure.data.error.code : 'HTTP_ERROR';
    const message = failure.success ? failure.data.error.message : res.statusText || 'request failed';
    if (res.status === 410 && code === 'HISTORY_TRIMMED') {
      const num = (value: unknown) => (typeof value === 'number' ? value : undefined);
      throw new HistoryTrimmedError(message, num(failure.data?.first_offset), num(failure.data?.head));
    }
    throw new HttpError(res.status, code, message);
  }
  const page = StreamEventsPage.safeParse(body);
  if (!page.success) throw new HttpError(res.status, 'INVALID_MESSAGE', `unexpected body: ${page.error.issues[0]?.message ?? 'invalid'}`);
  const { epoch, head, first_offset: firstOffset, events } = page.data;
  return { stream: page.data.stream, epoch, head, firstOffset, events };
}
