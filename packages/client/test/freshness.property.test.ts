/**
 * Property (fast-check), over a real gateway, a WebSocket proxy and the real client:
 * random event sequences on an order stream and a market or indicator stream (conflated
 * at a random rate, or not), with a live frame lost or corrupted on the way now and
 * then. Every replica ends equal to the server's state and proven by a checksum; every
 * loss or divergence is detected no later than the first `stream_position` of its
 * stream after the fault (positions come every interval, so: within one interval); and
 * nothing is ever flagged without a fault before it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { publish, startGateway, type TestGateway } from '@tradesync/testing';
import { FrameProxy, type FrameVerdict } from '@tradesync/testing/frame-proxy';
import { TradeSyncClient, type Logger } from '../src/index.js';

const INTERVAL = 100;

type Fault = 'none' | 'drop' | 'corrupt';
interface Episode {
  /** Events to publish, each a stream pick (0: orders, 1: the fast stream) and an entity pick. */
  readonly steps: ReadonlyArray<readonly [stream: 0 | 1, entity: number]>;
  readonly fault: Fault;
  /** Which live frame of the episode the fault hits. */
  readonly faultAt: number;
}

const episodeArb: fc.Arbitrary<Episode> = fc.record({
  steps: fc.array(fc.tuple(fc.constantFrom<0 | 1>(0, 1), fc.nat({ max: 3 })), { minLength: 1, maxLength: 12 }),
  fault: fc.constantFrom<Fault>('none', 'drop', 'corrupt'),
  faultAt: fc.nat({ max: 11 }),
});

const runArb = fc.record({
  fast: fc.constantFrom('market', 'indicators'),
  maxRate: fc.option(fc.integer({ min: 2, max: 20 }), { nil: undefined, freq: 3 }),
  episodes: fc.array(episodeArb, { minLength: 1, maxLength: 3 }),
});

/** One entry of what the test saw, in the order it happened. */
type Seen = { kind: 'fault'; stream: string; fault: Exclude<Fault, 'none'> } | { kind: 'position'; stream: string } | { kind: 'detected'; stream: string; what: string };

describe('freshness property: losses and divergences are always detected at the next position, never imagined', () => {
  let gw: TestGateway;
  let proxy: FrameProxy;
  let run = 0;
  /** Over all runs, so the property cannot pass without faults to find. */
  const totals = { faults: 0, detected: 0, episodes: 0 };

  beforeAll(async () => {
    gw = await startGateway({ positionIntervalMs: INTERVAL });
    proxy = await FrameProxy.start(gw.wsUrl.replace(/\/ws$/, ''));
  });
  afterAll(async () => {
    await proxy[Symbol.asyncDispose]();
    await gw[Symbol.asyncDispose]();
  });

  it('holds for random sequences, drops, corruptions and conflation rates', async () => {
    await fc.assert(
      fc.asyncProperty(runArb, async ({ fast, maxRate, episodes }) => {
        const n = ++run;
        const orders = `orders:prop${n}`;
        const fastStream = fast === 'market' ? `market:PROP-${n}` : `indicators:prop${n}`;
        const streams = [orders, fastStream];
        const seen: Seen[] = [];
        const detection = (what: string) => (message: string, context?: Record<string, unknown>) => {
          const stream = typeof context?.stream === 'string' ? context.stream : undefined;
          if (stream && /gap|lost|diverged|stale/.test(message)) seen.push({ kind: 'detected', stream, what: `${what}: ${message}` });
        };
        const logger: Logger = { debug: () => {}, warn: detection('warn'), error: detection('error') };

        // The proxy applies the current episode's fault to its chosen live frame, and notes
        // faults and positions in the order it passes them on.
        let fault: { kind: Fault; stream: string; at: number; frames: number } = { kind: 'none', stream: orders, at: 0, frames: 0 };
        proxy.filter = (text): FrameVerdict => {
          if (text.includes('"type":"stream_position"')) {
            for (const stream of streams) if (text.includes(`"stream":"${stream}"`)) seen.push({ kind: 'position', stream });
            return { action: 'pass' };
          }
          const hit = streams.filter((s) => text.includes(`"stream":"${s}"`) && text.includes('"offset":'));
          if (hit.length === 0 || text.includes('"type":"subscribed"')) return { action: 'pass' };
          if (fault.kind === 'none' || !hit.includes(fault.stream) || fault.frames++ !== fault.at) return { action: 'pass' };
          const kind = fault.kind;
          for (const stream of hit) seen.push({ kind: 'fault', stream, fault: kind });
          // A corrupted frame keeps its offsets and changes every value in it.
          return kind === 'drop' ? { action: 'drop' } : { action: 'replace', text: text.replaceAll('"price":"', '"price":"7').replaceAll('"value":"', '"value":"7') };
        };

        const client = new TradeSyncClient({ url: `${proxy.url}/ws`, WebSocket: WebSocket as never, logger, backoff: { delaysMs: [50], jitter: 0 } });
        try {
          const handles = [client.subscribe(orders), client.subscribe(fastStream, {}, maxRate === undefined ? {} : { maxRate })];
          await vi.waitFor(() => expect(handles.every((h) => h.synced)).toBe(true), { timeout: 5000 });
          let value = 0;
          for (const episode of episodes) {
            const from = seen.length;
            // The fault hits the n-th frame of one stream: the orders stream when the episode writes to it (one frame per event), else the fast one.
            const onOrders = episode.steps.filter(([pick]) => pick === 0).length;
            const target = onOrders > 0 ? orders : fastStream;
            const count = onOrders > 0 ? onOrders : episode.steps.length;
            fault = { kind: episode.fault, stream: target, at: episode.faultAt % count, frames: 0 };
            for (const [pick, entity] of episode.steps) {
              value++;
              const event =
                pick === 0
                  ? { stream: orders, type: 'order:updated', data: { order_id: `o${entity}`, symbol: 'BTC-USD', side: 'buy', order_type: 'limit', status: 'open', quantity: '1', filled_quantity: '0', price: `${value}`, session_id: null, created_at: new Date().toISOString() } }
                  : fast === 'market'
                    ? { stream: fastStream, type: 'market:tick', data: { symbol: `PROP-${n}`, price: `${value}`, timestamp: new Date().toISOString() } }
                    : { stream: fastStream, type: 'indicator:updated', data: { symbol: entity % 2 ? 'BTC-USD' : 'ETH-USD', name: entity < 2 ? 'ema_20' : 'rsi_14', value: `${value}` } };
              const published = await publish(gw.url, [event]);
              expect(published.status, JSON.stringify(published.body)).toBe(200);
              // Each event in a frame of its own, mostly: the fault hits one event.
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
            // Every replica ends proven at the head and equal to the server's state.
            await vi.waitFor(
              () => {
                for (const [i, stream] of streams.entries()) {
                  const entry = gw.gateway.store.get(stream);
                  if (!entry) continue;
                  expect(handles[i]!.position?.offset, stream).toBe(entry.head);
                  expect(client.freshness(stream)?.verifiedOffset, stream).toBe(entry.head);
                  expect(handles[i]!.state, stream).toEqual(entry.state);
                }
              },
              { timeout: 8000, interval: 20 },
            );
            const episodeSeen = seen.slice(from);
            judge(episodeSeen, streams, maxRate === undefined ? [] : [fastStream]);
            totals.episodes++;
            totals.faults += episodeSeen.filter((s) => s.kind === 'fault').length;
            totals.detected += episodeSeen.filter((s) => s.kind === 'detected').length;
          }
        } finally {
          client.disconnect();
        }
      }),
      { numRuns: 12 },
    );
    expect(totals.faults).toBeGreaterThan(0);
    expect(totals.detected).toBeGreaterThan(0);
    console.warn(`freshness property: ${totals.episodes} episodes, ${totals.faults} faults injected, ${totals.detected} detections`);
  }, 180_000);
});

/**
 * Over one episode: every detection follows a fault on its stream (no false alarm), at
 * most one position of that stream after the fault (detected at the next position or
 * sooner); a lost frame of a stream that is not conflated is always detected.
 */
function judge(seen: readonly Seen[], streams: readonly string[], conflated: readonly string[]): void {
  for (const stream of streams) {
    const faultAt = seen.findIndex((s) => s.kind === 'fault' && s.stream === stream);
    const detections = seen.map((s, i) => [s, i] as const).filter(([s]) => s.kind === 'detected' && s.stream === stream);
    if (faultAt < 0) {
      expect(detections.map(([s]) => s), `${stream}: flagged without a fault`).toEqual([]);
      continue;
    }
    const fault = seen[faultAt] as Extract<Seen, { kind: 'fault' }>;
    for (const [s, i] of detections) expect(i, `${stream}: ${JSON.stringify(s)} came before the fault`).toBeGreaterThan(faultAt);
    const first = detections[0]?.[1];
    if (first === undefined) {
      // Unnoticed: only a change a later event overwrote, or a conflated frame a later one replaced, can be.
      expect(fault.fault === 'corrupt' || conflated.includes(stream), `${stream}: a lost frame was never detected`).toBe(true);
      continue;
    }
    const positionsBefore = seen.slice(faultAt, first).filter((s) => s.kind === 'position' && s.stream === stream).length;
    expect(positionsBefore, `${stream}: detected only after ${positionsBefore} positions`).toBeLessThanOrEqual(1);
  }
}
