import { describe, expect, it } from 'vitest';
import { createSortedView } from '../src/core/sorted.js';

interface Item {
  id: string;
  at: string;
  v?: number;
}
const newestFirst = (a: Item, b: Item) => (a.at !== b.at ? (a.at < b.at ? 1 : -1) : a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
const full = (map: Record<string, Item>) => Object.values(map).sort(newestFirst);

describe('incremental sorted view', () => {
  it('equals a full sort through adds, updates, moves and removals', () => {
    const view = createSortedView<Item>(newestFirst, (i) => i.id);
    let map: Record<string, Item> = {};
    let seed = 3;
    const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let step = 0; step < 300; step++) {
      map = { ...map };
      const ids = Object.keys(map);
      for (let k = 0; k < 5; k++) {
        const r = rnd();
        const id = `s${Math.floor(rnd() * 400)}`;
        if (r < 0.6) map[id] = { id, at: String(Math.floor(rnd() * 50)).padStart(3, '0') };
        else if (r < 0.8 && ids.length > 0) delete map[ids[Math.floor(rnd() * ids.length)]!];
        else if (ids.length > 0) {
          const target = ids[Math.floor(rnd() * ids.length)]!;
          if (map[target]) map[target] = { ...map[target], v: step, ...(rnd() < 0.3 ? { at: String(Math.floor(rnd() * 50)).padStart(3, '0') } : {}) };
        }
      }
      expect(view(map)).toEqual(full(map));
    }
  });

  it('returns the same array while nothing changed', () => {
    const view = createSortedView<Item>(newestFirst, (i) => i.id);
    const map = { a: { id: 'a', at: '1' } };
    const first = view(map);
    expect(view(map)).toBe(first);
    expect(view({ ...map })).toBe(first);
  });
});
