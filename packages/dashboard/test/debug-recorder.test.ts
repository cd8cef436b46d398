import { describe, expect, it } from 'vitest';
import { DEBUG_MESSAGES, DebugRecorder, PROBE_LIMIT } from '../src/core/debug-recorder.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function harness(probe?: { latencies: number[] }) {
  let now = T0;
  const recorder = new DebugRecorder({ now: () => now, ...(probe ? { probe } : {}) });
  const report = (withMessages = true) => recorder.report({ offsets: [], frames: 7, withMessages });
  return { recorder, report, setNow: (t: number) => (now = t) };
}

describe('the debug recorder', () => {
  it('lists the last messages, oldest first, with their stream and offset', () => {
    const h = harness();
    h.recorder.message({ type: 'connected', sequence_number: 0 });
    h.setNow(T0 + 5);
    h.recorder.message({ type: 'market:tick', stream: 'market:AAPL', offset: 3 });
    const { messages } = h.report();
    expect(messages).toEqual([
      { at: T0, type: 'connected', raw: { type: 'connected', sequence_number: 0 } },
      { at: T0 + 5, type: 'market:tick', stream: 'market:AAPL', offset: 3, raw: { type: 'market:tick', stream: 'market:AAPL', offset: 3 } },
    ]);
  });

  it('keeps only the last messages of its ring', () => {
    const h = harness();
    for (let i = 0; i < DEBUG_MESSAGES + 50; i++) h.recorder.message({ type: 'pong', offset: i });
    const { messages } = h.report();
    expect(messages).toHaveLength(DEBUG_MESSAGES);
    expect(messages[0]?.offset).toBe(50);
    expect(messages.at(-1)?.offset).toBe(DEBUG_MESSAGES + 49);
  });

  it('builds no rows while the panel is closed', () => {
    const h = harness();
    h.recorder.message({ type: 'pong' });
    expect(h.report(false).messages).toEqual([]);
  });

  it('counts events per second and the median wire latency, then starts the next second from zero', () => {
    const h = harness();
    h.setNow(T0 + 100);
    for (const sent of [T0 + 90, T0 + 60, T0 + 80]) h.recorder.message({ type: 'market:tick', timestamp: iso(sent) });
    h.recorder.message({ type: 'pong', timestamp: 'not a time' });
    for (let i = 0; i < 3; i++) h.recorder.event({ timestamp: iso(T0) });
    expect(h.report()).toMatchObject({ eventsPerSecond: 3, wireLatencyMs: 20, frames: 7 });
    expect(h.report()).toMatchObject({ eventsPerSecond: 0, wireLatencyMs: null, screenLatencyMs: null });
  });

  it('measures event-to-screen latency when the frame that carried the event is committed', () => {
    const probe = { latencies: [] as number[] };
    const h = harness(probe);
    h.recorder.event({ timestamp: iso(T0) });
    h.recorder.frame(1);
    h.recorder.event({ timestamp: iso(T0 + 10) });
    h.recorder.frame(2);
    h.setNow(T0 + 50);
    h.recorder.committed(1);
    expect(probe.latencies).toEqual([50]);
    // A later commit covers every earlier frame too, once.
    h.setNow(T0 + 70);
    h.recorder.committed(3);
    h.recorder.committed(3);
    expect(probe.latencies).toEqual([50, 60]);
    expect(h.report().screenLatencyMs).toBe(60);
  });

  it('ties no frame to events that had no readable time', () => {
    const probe = { latencies: [] as number[] };
    const h = harness(probe);
    h.recorder.event({ timestamp: 'x' });
    h.recorder.frame(1);
    h.recorder.committed(1);
    expect(probe.latencies).toEqual([]);
  });

  it('keeps the probe bounded by dropping its older half', () => {
    const probe = { latencies: new Array<number>(PROBE_LIMIT).fill(1) };
    const h = harness(probe);
    h.recorder.event({ timestamp: iso(T0) });
    h.recorder.frame(1);
    h.recorder.committed(1);
    expect(probe.latencies).toHaveLength(PROBE_LIMIT / 2 + 1);
    expect(probe.latencies.at(-1)).toBe(0);
  });
});
