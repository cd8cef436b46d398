/**
 * Coalesces any number of store updates into one per animation frame: events can
 * arrive a thousand times a second, the screen changes sixty times. Work is
 * collected with `schedule` and run once by the next frame; `flushNow` runs it at
 * once (tests, page hide). The frame source is injected so tests drive it by hand.
 *
 * With `minIntervalMs` a flush also waits until that long has passed since the last
 * one (the frames in between only look at the clock): at 60 Hz, 33 ms means every
 * other frame, which leaves the main thread frames to spare for input and GC.
 */
export type RequestFrame = (callback: () => void) => unknown;

export interface FramePacing {
  readonly minIntervalMs: number;
  readonly now: () => number;
}

/** Frames come a little early or late; a frame this close to the interval counts as on time. */
const FRAME_JITTER_MS = 4;

export interface FrameCoalescer<K> {
  /** Marks `key` dirty; the flush of the next frame receives every dirty key once. */
  schedule(key: K): void;
  /** Runs a pending flush now (no-op when nothing is dirty). */
  flushNow(): void;
  /** Frames that actually flushed (for the debug panel and tests). */
  readonly frames: number;
  readonly pending: boolean;
}

export function createFrameCoalescer<K>(flush: (keys: ReadonlySet<K>) => void, requestFrame: RequestFrame, pacing?: FramePacing): FrameCoalescer<K> {
  let dirty = new Set<K>();
  let requested = false;
  let frames = 0;
  let lastFlush = -Infinity;
  const flushDirty = () => {
    requested = false;
    if (dirty.size === 0) return;
    if (pacing) lastFlush = pacing.now();
    // Swap before flushing: work scheduled by the flush itself goes to the next frame.
    const keys = dirty;
    dirty = new Set();
    frames++;
    flush(keys);
  };
  const run = () => {
    if (pacing && dirty.size > 0 && pacing.now() - lastFlush < pacing.minIntervalMs - FRAME_JITTER_MS) {
      // Too soon after the last flush: look again next frame.
      requestFrame(run);
      return;
    }
    flushDirty();
  };
  return {
    schedule(key) {
      dirty.add(key);
      if (!requested) {
        requested = true;
        requestFrame(run);
      }
    },
    flushNow: flushDirty,
    get frames() {
      return frames;
    },
    get pending() {
      return dirty.size > 0;
    },
  };
}

/**
 * requestAnimationFrame while the page is visible; a timer while it is hidden (a
 * hidden tab gets no frames, and the stores must still move on). A frame requested
 * just before the tab hides runs when it shows again, with everything since.
 */
export function browserFrame(callback: () => void): void {
  const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
  if (hidden || typeof requestAnimationFrame !== 'function') setTimeout(callback, 100);
  else requestAnimationFrame(callback);
}
