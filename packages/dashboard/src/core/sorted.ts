/**
 * A sorted array of a replica map's values, kept up to date incrementally. The
 * replica's maps are replaced whole every frame, but from one frame to the next only
 * a few entries change: re-sorting a thousand signals sixty times a second is work
 * proportional to the state, not to what changed. This keeps the previous order,
 * drops removed entries, swaps in changed ones (re-sorting, nearly in order, only if
 * a changed entry's sort key moved) and merges the sorted new ones: O(n) per update.
 *
 * `compare` must be a total order (break ties by id) so the result equals a full sort.
 */
export type SortedView<T> = (map: Readonly<Record<string, T>>) => readonly T[];

export function createSortedView<T>(compare: (a: T, b: T) => number, idOf: (item: T) => string): SortedView<T> {
  let prevMap: Readonly<Record<string, T>> | undefined;
  let prevList: T[] = [];
  return (map) => {
    if (map === prevMap) return prevList;
    const old = prevMap;
    prevMap = map;
    if (!old) {
      prevList = Object.values(map).sort(compare);
      return prevList;
    }
    const kept: T[] = [];
    let moved = false;
    let changed = false;
    for (const item of prevList) {
      const id = idOf(item);
      const next = Object.hasOwn(map, id) ? map[id] : undefined;
      if (next === undefined) {
        changed = true;
        continue;
      }
      if (next !== item) {
        changed = true;
        // Same id: compare is 0 exactly when the sort key did not change.
        if (!moved && compare(next, item) !== 0) moved = true;
      }
      kept.push(next);
    }
    const added: T[] = [];
    const ids = Object.keys(map);
    if (kept.length < ids.length) {
      for (const id of ids) if (!Object.hasOwn(old, id)) added.push(map[id]!);
    }
    if (!changed && added.length === 0) return prevList;
    if (moved) kept.sort(compare);
    prevList = added.length === 0 ? kept : merge(kept, added.sort(compare), compare);
    return prevList;
  };
}

function merge<T>(a: readonly T[], b: readonly T[], compare: (x: T, y: T) => number): T[] {
  const out: T[] = new Array<T>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = compare(b[j]!, a[i]!) < 0 ? b[j++]! : a[i++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}
