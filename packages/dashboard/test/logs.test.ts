import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogShipper } from '../src/core/logs.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('log shipping', () => {
  it('sends only WARN and ERROR, batched, to POST /api/logs; debug stays local', async () => {
    vi.useFakeTimers();
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const calls: Array<{ url: string; body: { logs: Array<{ level: string; message: string }> } }> = [];
    const fetchMock = vi.fn(async (url: string, init: { body: string }) => {
      calls.push({ url, body: JSON.parse(init.body) as never });
      return new Response('{}', { status: 200 });
    });
    const log = createLogShipper({ endpoint: '/api/logs', fetch: fetchMock as unknown as typeof fetch, intervalMs: 1000 });
    log.debug('noise');
    log.warn('gap in stream', { stream: 'orders:demo' });
    log.error('stream sync failed');
    expect(fetchMock).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe('/api/logs');
    expect(calls[0]!.body.logs.map((l) => [l.level, l.message])).toEqual([
      ['warn', 'gap in stream'],
      ['error', 'stream sync failed'],
    ]);
    expect(log.queued).toBe(0);
  });

  it('keeps entries while the gateway is unreachable and sends them later', async () => {
    vi.useFakeTimers();
    vi.spyOn(console, 'error').mockImplementation(() => {});
    let up = false;
    const fetchMock = vi.fn(async () => {
      if (!up) throw new TypeError('offline');
      return new Response('{}', { status: 200 });
    });
    const log = createLogShipper({ endpoint: '/api/logs', fetch: fetchMock, intervalMs: 500 });
    log.error('one');
    await vi.advanceTimersByTimeAsync(500);
    expect(log.queued).toBe(1);
    up = true;
    await vi.advanceTimersByTimeAsync(500);
    expect(log.queued).toBe(0);
  });
});
