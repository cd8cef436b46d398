import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { HistoryTrimmedError, HttpError, TradeSyncClient, type Logger } from '../src/index.js';
import { order, publish, startGateway } from '@tradesync/testing';

const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const TS = '2025-01-01T00:00:00.000Z';

function clientWith(fetchImpl: typeof fetch, token?: string): TradeSyncClient {
  return new TradeSyncClient({ url: 'ws://gw.test:8000/ws', WebSocket: WebSocket as never, fetch: fetchImpl, autoConnect: false, logger: quiet, ...(token ? { token } : {}) });
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('readEvents over REST', () => {
  it('asks GET /api/v1/streams/<stream>/events with after and limit and the token, and returns the validated page', async () => {
    const event = { type: 'order:closed', stream: 'orders:acme', epoch: 'e1', offset: 4, timestamp: TS, data: { order_id: 'o1', status: 'filled' } };
    const fetchMock = vi.fn<typeof fetch>(async () => json(200, { stream: 'orders:acme', epoch: 'e1', head: 9, first_offset: 1, events: [event] }));
    const page = await clientWith(fetchMock, 'tok').readEvents('orders:acme', { after: 3, limit: 1 });
    expect(fetchMock.mock.calls[0]![0]).toBe('http://gw.test:8000/api/v1/streams/orders%3Aacme/events?after=3&limit=1');
    expect(fetchMock.mock.calls[0]![1]).toEqual({ headers: { authorization: 'Bearer tok' } });
    expect(page).toEqual({ stream: 'orders:acme', epoch: 'e1', head: 9, firstOffset: 1, events: [event] });
  });

  it('throws HistoryTrimmedError on 410 HISTORY_TRIMMED, with where the history now starts', async () => {
    const fetchMock: typeof fetch = async () => json(410, { success: false, error: { code: 'HISTORY_TRIMMED', message: 'take a snapshot' }, epoch: 'e1', first_offset: 40, head: 90 });
    const error = await clientWith(fetchMock).readEvents('orders:acme', { after: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HistoryTrimmedError);
    expect(error).toMatchObject({ status: 410, code: 'HISTORY_TRIMMED', firstOffset: 40, head: 90 });
  });

  it('throws HttpError with the server code on other failures, and on a body that breaks the contract', async () => {
    const forbidden: typeof fetch = async () => json(403, { success: false, error: { code: 'FORBIDDEN', message: 'not allowed to read orders:acme' } });
    await expect(clientWith(forbidden).readEvents('orders:acme', { after: 0 })).rejects.toMatchObject({ name: 'HttpError', status: 403, code: 'FORBIDDEN' });
    const broken: typeof fetch = async () => json(200, { stream: 'orders:acme', events: [{ offset: 'one' }] });
    const error = await clientWith(broken).readEvents('orders:acme', { after: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ code: 'INVALID_MESSAGE' });
  });

  it('reads the events a real gateway holds', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('acme'), order('acme'), order('acme')]);
    const client = new TradeSyncClient({ url: gw.wsUrl, WebSocket: WebSocket as never, autoConnect: false, logger: quiet });
    const page = await client.readEvents('orders:acme', { after: 1, limit: 10 });
    expect(page).toMatchObject({ stream: 'orders:acme', head: 3, firstOffset: expect.any(Number) });
    expect(page.events.map((e) => e.offset)).toEqual([2, 3]);
    expect(page.epoch).toBe(gw.gateway.store.get('orders:acme')!.epoch);
  });
});
