import type { WebSocketLike } from '../../src/index.js';

export interface SentMessage {
  readonly id?: string;
  readonly type: string;
  readonly data?: Record<string, unknown>;
}

const TS = '2025-01-01T00:00:00.000Z';

/**
 * An in-test WebSocket: records what the client sends and lets the test play the
 * server (open, say `connected`, reply, go silent, drop). Every instance created is
 * kept in `FakeSocket.all`, newest last.
 */
export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  readonly sent: SentMessage[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closedWith: { code: number; reason: string } | undefined;
  #seq = 0;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  static get last(): FakeSocket {
    const socket = FakeSocket.all.at(-1);
    if (!socket) throw new Error('no socket was opened');
    return socket;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as SentMessage);
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.closedWith = { code, reason };
    this.onclose?.({ code, reason });
  }

  /* ---- the server's side ---- */

  /** Opens and sends `connected`, as the gateway does. */
  accept(heartbeatMs = 30_000): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({ type: 'connected', connection_id: `00000000-0000-4000-8000-${String(FakeSocket.all.indexOf(this)).padStart(12, '0')}`, heartbeat_interval: heartbeatMs });
  }

  /** Delivers a message with the envelope fields the protocol requires. */
  receive(message: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify({ sequence_number: this.#seq++, timestamp: TS, ...message }) });
  }

  receiveRaw(text: string): void {
    this.onmessage?.({ data: text });
  }

  /** The connection breaks (no closing handshake). */
  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The messages of one type the client sent on this socket. */
  sentOf(type: string): SentMessage[] {
    return this.sent.filter((m) => m.type === type);
  }

  lastOf(type: string): SentMessage {
    const message = this.sentOf(type).at(-1);
    if (!message) throw new Error(`no ${type} was sent`);
    return message;
  }

  /** Answers the last `subscribe` of a stream with a snapshot (or the given fields). */
  answerSubscribe(stream: string, fields: Record<string, unknown> = {}): void {
    const request = this.sent.filter((m) => m.type === 'subscribe' && m.data?.stream === stream).at(-1);
    if (!request) throw new Error(`no subscribe for ${stream}`);
    const epoch = (fields.epoch as string | undefined) ?? 'e1';
    const offset = (fields.offset as number | undefined) ?? 0;
    this.receive({
      type: 'subscribed',
      id: request.id,
      stream,
      epoch,
      offset,
      recovered: false,
      snapshot: { epoch, offset, state: fields.state ?? { orders: {} } },
      ...fields,
    });
  }
}

export const TIMESTAMP = TS;
