import { EVENT_TYPES, EventInput, isEventType, parseStream, type StreamRef } from '@tradesync/protocol';

export interface PublishProblem {
  readonly index: number;
  readonly code: 'INVALID_STREAM' | 'INVALID_EVENT';
  readonly message: string;
}

/**
 * Checks what a producer wants to append, all or nothing: a stream of a known kind,
 * an event type of that kind, and data valid for that type. Returns the problems
 * (empty when everything may be appended).
 */
export function validateEvents(inputs: readonly unknown[]): { events: EventInput[]; problems: PublishProblem[] } {
  const events: EventInput[] = [];
  const problems: PublishProblem[] = [];
  inputs.forEach((raw, index) => {
    const shape = EventInput.safeParse(raw);
    if (!shape.success) {
      problems.push({ index, code: 'INVALID_EVENT', message: 'an event needs {stream: string, type: string, data: object}' });
      return;
    }
    const { stream, type, data } = shape.data;
    const ref = parseStream(stream);
    if (!ref) {
      problems.push({ index, code: 'INVALID_STREAM', message: `unknown or malformed stream "${stream}"` });
      return;
    }
    if (!isEventType(type) || EVENT_TYPES[type].kind !== ref.kind) {
      problems.push({ index, code: 'INVALID_EVENT', message: `event type "${type}" does not belong to a ${ref.kind} stream` });
      return;
    }
    const parsed = EVENT_TYPES[type].data.safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      problems.push({ index, code: 'INVALID_EVENT', message: `${type}: ${issue ? `${issue.path.join('.') || 'data'}: ${issue.message}` : 'invalid data'}` });
      return;
    }
    if (ref.kind === 'market' && (parsed.data as { symbol?: unknown }).symbol !== ref.symbol) {
      problems.push({ index, code: 'INVALID_EVENT', message: `market:tick for ${String((parsed.data as { symbol?: unknown }).symbol)} on stream ${stream}` });
      return;
    }
    events.push({ stream, type, data: withDetailsUrl(type, ref, parsed.data) });
  });
  return { events, problems };
}

/**
 * A `pattern_detected` event links to the whole pattern (`GET /api/v1/patterns/{id}`), so
 * a client that shows a summary fetches the rest only when asked (the large-payload rule
 * of the seed dashboards: live messages under 10 KB). A producer's own link is kept.
 */
function withDetailsUrl<D extends Record<string, unknown>>(type: string, ref: StreamRef, data: D): D {
  if (type !== 'pattern_detected' || ref.kind === 'market' || data.full_details_url !== undefined) return data;
  const id = encodeURIComponent(String(data.id));
  return { ...data, full_details_url: `/api/v1/patterns/${id}?account=${encodeURIComponent(ref.account)}` };
}
