import CRC32 from 'crc-32';

/**
 * The checksum of a stream's state, as `subscribed` and `stream_position` carry it: the
 * CRC-32 (IEEE, as zlib computes it) of the UTF-8 bytes of the state's canonical JSON,
 * as 8 lowercase hex digits. A client that computes the same over its replica proves it
 * holds the server's state at that offset.
 *
 * Canonical JSON: object keys sorted by code point at every level, no whitespace,
 * strings and numbers as `JSON.stringify` writes them, arrays in order; keys whose value
 * is `undefined` are left out, as `JSON.stringify` leaves them out. Python writes the
 * same with `json.dumps(state, sort_keys=True, separators=(',', ':'), ensure_ascii=False)`.
 *
 * Written here rather than taken from a canonicalization library: those sort keys by
 * UTF-16 code unit (RFC 8785), which differs from code point order for keys mixing
 * characters above U+FFFF with ones in U+E000–U+FFFF, and the contract says code point.
 */

/** Canonical JSON of each object already written, by identity: states share unchanged entities between offsets. */
const written = new WeakMap<object, string>();

/** The canonical JSON text of a JSON value (see above). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const known = written.get(value);
  if (known !== undefined) return known;
  let text: string;
  if (Array.isArray(value)) {
    text = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      // JSON.stringify writes null for what it cannot write in an array.
      text += (i === 0 ? '' : ',') + (item === undefined || typeof item === 'function' ? 'null' : canonicalJson(item));
    }
    text += ']';
  } else {
    const record = value as Record<string, unknown>;
    const keys = sortByCodePoint(Object.keys(record));
    text = '{';
    let first = true;
    for (const key of keys) {
      const item = record[key];
      if (item === undefined || typeof item === 'function') continue;
      text += (first ? '' : ',') + JSON.stringify(key) + ':' + canonicalJson(item);
      first = false;
    }
    text += '}';
  }
  written.set(value, text);
  return text;
}

/** The checksum of a state (see above). `crc32` may be a faster implementation of the same CRC (the server passes zlib's). */
export function stateChecksum(state: object, crc32: (text: string) => number = CRC32.str): string {
  return ((crc32(canonicalJson(state)) >>> 0).toString(16)).padStart(8, '0');
}

/** Eight lowercase hex digits. */
export const CHECKSUM_PATTERN = /^[0-9a-f]{8}$/;

/**
 * Sorts keys by code point. The default sort compares UTF-16 code units, which agrees
 * with code point order unless a key holds a surrogate (a character above U+FFFF), so
 * the common case is the native sort alone.
 */
function sortByCodePoint(keys: string[]): string[] {
  keys.sort();
  if (keys.some(hasSurrogate)) keys.sort(compareCodePoints);
  return keys;
}

function hasSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdfff) return true;
  }
  return false;
}

/**
 * Code point order over UTF-16: at the first differing unit, surrogates (U+D800–DFFF,
 * which encode U+10000 and above) must sort after U+E000–U+FFFF, so those two ranges
 * are shifted past each other before comparing.
 */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
