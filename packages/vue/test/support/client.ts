import { onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { TradeSyncClient, type ClientOptions, type Logger, type WebSocketConstructor } from '@tradesync/client';
import { http } from '@tradesync/testing';

const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };

/** A real client over `ws` (Node 20 has no global WebSocket), quick to retry, quiet; disconnected when the test ends. */
export function nodeClient(url: string, options: Partial<ClientOptions> = {}): TradeSyncClient {
  const client = new TradeSyncClient({
    url,
    // ws's event types are wider than the few fields the SDK reads.
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    logger: quiet,
    backoff: { delaysMs: [50], jitter: 0 },
    ...options,
  });
  onTestFinished(() => client.disconnect());
  return client;
}

/** The streams the gateway holds subscriptions for, over all its connections (sorted, repeated per connection). */
export async function serverSubscriptions(baseUrl: string): Promise<string[]> {
  const { body } = await http(baseUrl, '/api/admin/websocket/connections');
  const connections = body.connections as Array<{ subscriptions: Array<{ stream: string }> }>;
  return connections.flatMap((c) => c.subscriptions.map((s) => s.stream)).sort();
}
