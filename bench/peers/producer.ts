/**
 * The producer: publishes events at a fixed rate over HTTP. Event `i` is SCHEDULED at
 * `start + i * 1000 / rate` and carries that time as `data.sched`; receivers measure
 * from it, so a stalled server or producer shows up as latency instead of silently
 * slowing the schedule (no coordinated omission). Whatever fell due while the previous
 * requests were in flight goes out in the next request.
 */
import { Agent, request } from 'node:http';
import { now } from './common.js';

export interface ProduceOptions {
  readonly port: number;
  readonly path: string;
  readonly rate: number;
  /** Wall-clock ms (see `now`) of event 0. */
  readonly start: number;
  readonly durationMs: number;
  readonly makeEvent: (i: number, sched: number) => unknown;
  readonly signal?: AbortSignal;
}

export interface ProduceResult {
  readonly sent: number;
  readonly failed: number;
  /** Scheduled time of event i. */
  readonly schedOf: (i: number) => number;
}

const MAX_IN_FLIGHT = 4;
const MAX_PER_REQUEST = 2000;

export async function produce(options: ProduceOptions): Promise<ProduceResult> {
  const { port, path, rate, start, durationMs, makeEvent, signal } = options;
  const total = Math.floor((durationMs * rate) / 1000);
  const schedOf = (i: number): number => start + (i * 1000) / rate;
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  let sent = 0;
  let failed = 0;
  let inFlight = 0;
  const post = (events: unknown[]): Promise<void> =>
    new Promise((resolve) => {
      const body = JSON.stringify(events);
      const req = request(
        { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          if (res.statusCode !== 200) failed += events.length;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', () => {
        failed += events.length;
        resolve();
      });
      req.end(body);
    });
  const pending = new Set<Promise<void>>();
  try {
    while (sent < total && !signal?.aborted) {
      const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1);
      if (due > sent && inFlight < MAX_IN_FLIGHT) {
        const batch: unknown[] = [];
        const upTo = Math.min(due, sent + MAX_PER_REQUEST);
        for (let i = sent; i < upTo; i++) batch.push(makeEvent(i, schedOf(i)));
        sent = upTo;
        inFlight++;
        const p = post(batch).finally(() => {
          inFlight--;
          pending.delete(p);
        });
        pending.add(p);
        continue;
      }
      if (due > sent) {
        // All requests in flight: wait for one to finish (what fell due meanwhile goes in one batch).
        await Promise.race(pending);
        continue;
      }
      // Sleep until the next event falls due; setTimeout's floor is ~1 ms, so below that just yield.
      const wait = schedOf(sent) - now();
      await new Promise((resolve) => (wait > 0.5 ? setTimeout(resolve, Math.min(Math.max(1, Math.floor(wait)), 50)) : setImmediate(resolve)));
    }
    await Promise.all(pending);
  } finally {
    agent.destroy();
  }
  return { sent, failed, schedOf };
}

const PAD = 'x'.repeat(70);

/** A `market:tick` of ~300 bytes on the wire (TradeSync envelope included); `symbol` comes before `sched` (bench/peers/freshness-worker.ts reads them in that order). */
export function tick(stream: string, sched: number, symbol = 'BENCH'): unknown {
  return {
    stream,
    type: 'market:tick',
    data: { symbol, price: '42000.50', timestamp: new Date(sched).toISOString(), sched: Number(sched.toFixed(3)), pad: PAD },
  };
}

/** An open order on one account's stream (`orders:acct-N`), ~300 bytes on the wire. */
export function order(stream: string, id: string, sched: number): unknown {
  return {
    stream,
    type: 'order:updated',
    data: {
      order_id: id,
      symbol: 'BTC-USD',
      side: 'buy',
      order_type: 'limit',
      quantity: '0.5',
      price: '42000.50',
      filled_quantity: '0',
      status: 'open',
      session_id: null,
      created_at: new Date(sched).toISOString(),
      sched: Number(sched.toFixed(3)),
    },
  };
}
