import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { TradeSyncClient, type SyncedInfo } from '../src/index.js';
import { publish, startGateway, tick } from '@tradesync/testing';

describe('the client against a real gateway', () => {
  it('syncs, follows live events and resumes with recovered: true after a server restart', async () => {
    const first = await startGateway({}, { keepData: true });
    const port = first.gateway.port;
    const client = new TradeSyncClient({ url: first.wsUrl, WebSocket: WebSocket as never, backoff: { delaysMs: [50], jitter: 0 } });
    const synced: SyncedInfo[] = [];
    client.on('synced', (s) => synced.push(s));
    const handle = client.subscribe('market:BTC-USD');
    await vi.waitFor(() => expect(synced).toHaveLength(1));
    await publish(first.url, [tick('BTC-USD', '1'), tick('BTC-USD', '2')]);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(2));
    await first.stop();
    await vi.waitFor(() => expect(client.status.state).toBe('reconnecting'));
    await using second = await startGateway({ port }, { dataDir: first.dataDir });
    await publish(second.url, [tick('BTC-USD', '3')]);
    await vi.waitFor(() => expect(synced).toHaveLength(2), { timeout: 5000 });
    expect(synced[1]).toMatchObject({ recovered: true, offset: 3, replayed: 1 });
    expect(handle.state).toMatchObject({ last: { price: '3' } });
    client.disconnect();
  });
});
