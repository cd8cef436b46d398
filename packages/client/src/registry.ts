import { TradeSyncClient } from './client.js';
import type { ClientOptions } from './options.js';

const clients = new Map<string, TradeSyncClient>();

/**
 * One client per URL in a page: every component that asks for the same gateway gets
 * the same client, so a page holds one socket however many panels it shows.
 * Options apply only when the client is created.
 */
export function getClient(url: string | readonly string[], options: Omit<ClientOptions, 'url'> = {}): TradeSyncClient {
  const key = typeof url === 'string' ? url : url.join(' ');
  let client = clients.get(key);
  if (!client) {
    client = new TradeSyncClient({ ...options, url });
    clients.set(key, client);
  }
  return client;
}

/** Disconnects and forgets a shared client (tests, page teardown). */
export function releaseClient(url: string | readonly string[]): void {
  const key = typeof url === 'string' ? url : url.join(' ');
  clients.get(key)?.disconnect();
  clients.delete(key);
}
