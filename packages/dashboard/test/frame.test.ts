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

  describe('with a minimum interval', () => {
    /** Frames every `frameMs` on a hand-moved clock. */
    function pacedFrames(frameMs: number) {
      const frames = manualFrames();
      let now = 1000;
      return {
        request: frames.request,
        get requested() {
          return frames.requested;
        },
        now: () => now,
        /** Moves the clock one frame on and runs that frame. */
        tick() {
          now += frameMs;
          frames.run();
        },
      };
    }

    // The interval is time, not frames: 30 flushes a second whatever the display's rate.
    it.each([
      { hz: 60, every: 'other' },
      { hz: 120, every: 'fourth' },
    ])('flushes every $every frame at $hz Hz under a steady stream of updates', ({ hz }) => {
      const f = pacedFrames(1000 / hz);
      const c = createFrameCoalescer<string>(() => {}, f.request, { minIntervalMs: 33, now: f.now });
      for (let frame = 0; frame < hz; frame++) {
        c.schedule('data');
        f.tick();
      }
      expect(c.frames).toBe(30);
    });

    it('keeps asking for frames until the interval has passed, then flushes everything once', () => {
      const f = pacedFrames(1000 / 60);
      const seen: string[][] = [];
      const c = createFrameCoalescer<string>((keys) => seen.push([...keys]), f.request, { minIntervalMs: 100, now: f.now });
      c.schedule('a');
      f.tick();
      expect(seen).toEqual([['a']]);
      c.schedule('b');
      c.schedule('c');
      for (let i = 0; i < 4; i++) f.tick();
      expect(seen).toHaveLength(1);
      expect(f.requested).toBe(1);
      for (let i = 0; i < 2; i++) f.tick();
      expect(seen).toEqual([['a'], ['b', 'c']]);
      // Nothing dirty: no frame is asked for.
      f.tick();
      expect(f.requested).toBe(0);
    });

    it('an update after a quiet spell shows on the next frame', () => {
      const f = pacedFrames(1000 / 60);
      const seen: string[][] = [];
      const c = createFrameCoalescer<string>((keys) => seen.push([...keys]), f.request, { minIntervalMs: 33, now: f.now });
      c.schedule('a');
      f.tick();
      for (let i = 0; i < 10; i++) f.tick();
      c.schedule('b');
      f.tick();
      expect(seen).toEqual([['a'], ['b']]);
    });

    it('flushNow does not wait for the interval', () => {
      const f = pacedFrames(1000 / 60);
      const seen: string[][] = [];
      const c = createFrameCoalescer<string>((keys) => seen.push([...keys]), f.request, { minIntervalMs: 1000, now: f.now });
      c.schedule('a');
      f.tick();
      c.schedule('b');
      c.flushNow();
      expect(seen).toEqual([['a'], ['b']]);
    });
  });
});
