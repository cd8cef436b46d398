/**
 * The frames shared between connections (ws/frames.ts), and the typing of what a
 * handler may send (checked by `tsc`, which covers this file: each @ts-expect-error
 * line must stay an error).
 */
import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { BatchFrames, SharedMessage, textFrame, type PendingEvent } from '../src/ws/frames.js';
import type { Connection } from '../src/ws/connection.js';

const pending = (offset: number): PendingEvent => ({ stream: 'market:BTC-USD', kind: 'market', offset, key: 'BTC-USD', event: { type: 'market:tick', stream: 'market:BTC-USD', epoch: 'e', offset, timestamp: '2026-01-01T00:00:00.000Z', data: {} }, session: undefined, json: `{"type":"market:tick","offset":${offset}}`, tail: undefined });

describe('BatchFrames', () => {
  it('builds the batch body once for every connection of a flush that gets the same events', () => {
    const frames = new BatchFrames('2026-01-01T00:00:00.000Z');
    const events = [pending(1), pending(2)];
    const body = frames.tail(events);
    expect(body.toString()).toBe(',"events":[{"type":"market:tick","offset":1},{"type":"market:tick","offset":2}]}');
    expect(frames.tail([...events])).toBe(body);
    expect(frames.tail([events[0]!])).not.toBe(body);
  });

  it('shares nothing between two flushes (two gateways in one process each have their own)', () => {
    const events = [pending(1), pending(2)];
    const a = new BatchFrames();
    const b = new BatchFrames();
    expect(a.tail(events)).not.toBe(b.tail(events));
    expect(a.tail(events).equals(b.tail(events))).toBe(true);
  });
});

describe('SharedMessage', () => {
  it('encodes the fields once, after the envelope each connection adds', () => {
    const message = new SharedMessage('unsubscribed', { stream: 'orders:a' });
    expect(message.tail.toString()).toBe(',"stream":"orders:a"}');
    expect(JSON.parse(`{"type":"unsubscribed","sequence_number":3${message.tail.toString()}`)).toEqual({ type: 'unsubscribed', sequence_number: 3, stream: 'orders:a' });
  });
});

/** ws's own frame parser, as a client uses it (not in its type declarations). */
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Writable };

/** What a client's parser makes of `bytes`: each message's text and whether it was binary. */
function parsed(bytes: Buffer): { text: string; binary: boolean }[] {
  const messages: { text: string; binary: boolean }[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data: Buffer, binary: boolean) => messages.push({ text: data.toString(), binary }));
  receiver.on('error', (err: Error) => {
    throw err;
  });
  receiver.write(bytes);
  return messages;
}

describe('textFrame', () => {
  it.each([0, 1, 125, 126, 2000, 65_535, 65_536, 200_000])('is one unmasked text frame a client parses, for a %d-byte payload', (size) => {
    const head = '{"sequence_number":7,';
    const tail = Buffer.from(`"pad":"${'é'.repeat(Math.max(0, Math.floor((size - head.length - 9) / 2)))}"}`);
    const frame = textFrame(head, tail);
    const text = head + tail.toString();
    expect(parsed(frame)).toEqual([{ text, binary: false }]);
    // Two frames back to back are two messages: the length says exactly where the first ends.
    expect(parsed(Buffer.concat([frame, textFrame('{"a":', Buffer.from('1}'))]))).toEqual([{ text, binary: false }, { text: '{"a":1}', binary: false }]);
  });
});

/** Never called: only compiled. */
export function sendIsTypedByTheProtocol(conn: Connection): void {
  conn.send('pong', {});
  conn.send('unsubscribed', { stream: 'orders:a' }, 'id-1');
  // @ts-expect-error a type the protocol does not declare
  conn.send('welcome', {});
  // @ts-expect-error batch_update is built by flush only
  conn.send('batch_update', { events: [] });
  // @ts-expect-error a required field missing
  conn.send('unsubscribed', {});
  // @ts-expect-error a field of the wrong type
  conn.send('unsubscribed', { stream: 42 });
  // @ts-expect-error a field the message does not declare
  conn.send('pong', { pong: true });
  // @ts-expect-error the envelope is stamped by the connection
  conn.send('pong', { sequence_number: 9 });
  // @ts-expect-error an error needs success: false
  conn.send('error', { success: true, error: { code: 'X', message: 'm' } });
}
