import { describe, expect, it } from 'vitest';
import { PointBuffer } from '../src/core/series.js';

describe('chart point buffer', () => {
  it('keeps one point per second, the last value winning', () => {
    const b = new PointBuffer();
    b.push(1000, '10');
    b.push(1500, '11');
    b.push(2000, '12.5');
    expect(b.points).toEqual([
      { time: 1, value: 11 },
      { time: 2, value: 12.5 },
    ]);
  });

  it('inserts late points in order and asks for a redraw', () => {
    const b = new PointBuffer();
    b.push(5000, '5');
    b.push(2000, '2');
    expect(b.points.map((p) => p.time)).toEqual([2, 5]);
    expect(b.resets).toBe(1);
  });

  it('stays bounded', () => {
    const b = new PointBuffer(100);
    for (let i = 0; i < 1000; i++) b.push(i * 1000, String(i));
    expect(b.points.length).toBeLessThanOrEqual(100);
    expect(b.points.at(-1)).toEqual({ time: 999, value: 999 });
  });

  it('ignores values that are not decimals', () => {
    const b = new PointBuffer();
    b.push(1000, 'NaN');
    b.push(Number.NaN, '1');
    expect(b.points).toEqual([]);
  });

  it('returns the points from a time on', () => {
    const b = new PointBuffer();
    for (let i = 1; i <= 5; i++) b.push(i * 1000, String(i));
    expect(b.since(4).map((p) => p.time)).toEqual([4, 5]);
    expect(b.since(9)).toEqual([]);
  });
});
