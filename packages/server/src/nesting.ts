/**
 * How deep a client may nest arrays and objects in a message or a request body. The
 * contract's messages and entities are a few levels deep; a frame of 64 KB can nest
 * 30,000 levels, and anything that walks such a value recursively (JSON.stringify when
 * the event is stored or a reply echoes it) overflows the stack. Refused at the edge.
 */
export const MAX_NESTING = 32;

/** True when `value` nests arrays or objects more than `max` levels deep (iterative: no recursion to overflow). */
export function nestedDeeperThan(value: unknown, max: number = MAX_NESTING): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.value === null || typeof item.value !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > max) return true;
    for (const child of Array.isArray(item.value) ? item.value : Object.values(item.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth });
    }
  }
  return false;
}
