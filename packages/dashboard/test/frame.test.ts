import { describe, expect, it } from 'vitest';
import { createFrameCoalescer } from '../src/core/frame.js';

/** A frame source the test drives by hand. */
function manualFrames() {
  const queue: Array<() => void> = [];
  return {
    request: (cb: () => void) => void queue.push(cb),
    get requested() {
      return queue.length;
    },
    run() {
      const due = queue.splice(0);
      for (const cb of due) cb();
    },
  };
}

describe('frame coalescer', () => {
  it('runs one flush per frame however many updates came in', () => {
    const frames = manualFrames();
    const flushes: string[][] = [];
    const c = createFrameCoalescer<string>((keys) => flushes.push([...keys]), frames.request);
    for (let i = 0; i < 1000; i++) c.schedule(i % 2 ? 'data' : 'status');
    expect(frames.requested).toBe(1);
    expect(flushes).toEqual([]);
    frames.run();
    expect(flushes).toEqual([['status', 'data']]);
    expect(c.frames).toBe(1);
  });

  it('requests no frame while nothing changed', () => {
    const frames = manualFrames();
    const c = createFrameCoalescer<string>(() => {}, frames.request);
    frames.run();
    expect(frames.requested).toBe(0);
    c.schedule('a');
    frames.run();
    frames.run();
    expect(c.frames).toBe(1);
    expect(c.pending).toBe(false);
  });

  it('moves work scheduled during a flush to the next frame', () => {
    const frames = manualFrames();
    const seen: string[][] = [];
    const c = createFrameCoalescer<string>((keys) => {
      seen.push([...keys]);
      if (keys.has('a')) c.schedule('b');
    }, frames.request);
    c.schedule('a');
    frames.run();
    expect(seen).toEqual([['a']]);
    expect(frames.requested).toBe(1);
    frames.run();
    expect(seen).toEqual([['a'], ['b']]);
  });

  it('flushNow runs pending work at once and leaves the frame with nothing to do', () => {
    const frames = manualFrames();
    const seen: string[][] = [];
    const c = createFrameCoalescer<string>((keys) => seen.push([...keys]), frames.request);
    c.schedule('x');
    c.flushNow();
    expect(seen).toEqual([['x']]);
    frames.run();
    expect(seen).toHaveLength(1);
  });
});
