import { describe, expect, it } from 'vitest';
import { publish, startGateway, TestClient, tick } from '@tradesync/testing';

describe('a gateway on a real port', () => {
  it('greets, subscribes with a snapshot and delivers a live event after it', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    expect(client.messages[0]).toMatchObject({ type: 'connected', sequence_number: 0 });
    const sub = await client.request('subscribe', { stream: 'market:BTC-USD' });
    expect(sub).toMatchObject({ type: 'subscribed', stream: 'market:BTC-USD', offset: 0, recovered: false, sequence_number: 1 });
    const answer = await publish(gw.url, [tick('BTC-USD', '42000.5')]);
    expect(answer.status).toBe(200);
    const live = await client.next((m) => m.type === 'market:tick');
    expect(live).toMatchObject({ stream: 'market:BTC-USD', offset: 1, sequence_number: 2, epoch: sub.epoch });
  });
});
