import { afterEach, beforeEach, vi } from 'vitest';
import { TradeSyncClient, type ClientOptions, type LiveEvent, type Logger } from '../../src/index.js';
import { FakeSocket, TIMESTAMP } from './fake-socket.js';

export const STREAM = 'orders:acme';
export const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };

/** A client on fake sockets whose jitter is pinned to the middle: every delay is its base. */
export function makeClient(options: Partial<ClientOptions> = {}): TradeSyncClient {
  return new TradeSyncClient({ url: 'ws://gw.test/ws', WebSocket: FakeSocket, fetch: null, random: () => 0.5, logger: quiet, ...options });
}

export function orderEvent(offset: number, fields: Record<string, unknown> = {}, epoch = 'e1'): LiveEvent {
  return {
    type: 'order:updated',
    stream: STREAM,
    epoch,
    offset,
    timestamp: TIMESTAMP,
    data: {
      order_id: `o${offset}`,
      symbol: 'BTC-USD',
      side: 'buy',
      order_type: 'limit',
      quantity: '1',
      price: '100.00',
      filled_quantity: '0',
      status: 'open',
      session_id: null,
      created_at: TIMESTAMP,
      ...fields,
    },
  };
}

/** Connects the newest socket, answers the subscribe of STREAM with a snapshot at `offset`, and lets the reply land. */
export async function connectAndSync(socket: FakeSocket, offset = 0): Promise<void> {
  socket.accept();
  socket.answerSubscribe(STREAM, { offset });
  await vi.advanceTimersByTimeAsync(0);
}

/**
 * Fake timers and fake sockets for every test of the file; `track(client)` disconnects
 * the client after its test.
 */
export function useFakeClients(): { track: (client: TradeSyncClient) => TradeSyncClient } {
  let clients: TradeSyncClient[] = [];
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => {
    for (const client of clients) client.disconnect();
    clients = [];
    vi.useRealTimers();
  });
  return { track: (client) => (clients.push(client), client) };
}
