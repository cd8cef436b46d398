import type { EventInput } from '@tradesync/protocol';
import type { StoredEvent } from '../engine.js';

/**
 * How events travel to and from Redis: the arguments of the append script, the log
 * entries it writes and the notification it publishes. Pure.
 */

export const isoOf = (ms: number): string => new Date(ms).toISOString();

/** A published append: stream names, their epochs, and [stream index, offset, ms, type, data] per event. */
interface AppendMessage {
  readonly s: string[];
  readonly e: string[];
  readonly v: Array<[number, number, number, string, Record<string, unknown>]>;
}

/** The events of one append notification (throws on text that is not one). */
export function decodeAppendMessage(text: string): StoredEvent[] {
  const message = JSON.parse(text) as AppendMessage;
  // Events of one call share their stamp: format each distinct one once.
  const stamps = new Map<number, string>();
  return message.v.map(([i, offset, ms, type, data]): StoredEvent => {
    let timestamp = stamps.get(ms);
    if (timestamp === undefined) stamps.set(ms, (timestamp = isoOf(ms)));
    return { type, stream: message.s[i] ?? '', epoch: message.e[i] ?? '', offset, timestamp, data };
  });
}

/** The distinct streams of an append (in first-seen order) and, per event, its stream's index (1-based), type and data JSON. */
export interface EncodedAppend {
  readonly names: string[];
  readonly index: Map<string, number>;
  readonly args: Array<string | number>;
}

/** Serialises an append; throws (before Redis sees any of it) on an event that cannot be encoded. */
export function encodeAppend(events: readonly EventInput[]): EncodedAppend {
  const names: string[] = [];
  const index = new Map<string, number>();
  const args: Array<string | number> = [];
  for (const event of events) {
    let i = index.get(event.stream);
    if (i === undefined) {
      i = names.push(event.stream);
      index.set(event.stream, i);
    }
    args.push(i, event.type, JSON.stringify(event.data));
  }
  return { names, index, args };
}

/** One XRANGE entry of `l:<stream>` as an event. */
export function toStoredEvent(stream: string, epoch: string, id: string, fields: readonly string[]): StoredEvent {
  let type = '';
  let data = '{}';
  let ms = 0;
  for (let k = 0; k + 1 < fields.length; k += 2) {
    const value = fields[k + 1]!;
    switch (fields[k]) {
      case 't':
        type = value;
        break;
      case 'd':
        data = value;
        break;
      case 'ts':
        ms = Number(value);
        break;
    }
  }
  return { type, stream, epoch, offset: Number.parseInt(id, 10), timestamp: isoOf(ms), data: JSON.parse(data) as Record<string, unknown> };
}
