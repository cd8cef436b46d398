/**
 * Reading the few numbers a receiver needs straight from the frame's bytes, so the
 * load generator spends its CPU on sockets rather than on `JSON.parse` of every
 * event (with 1,000 clients per process, parsing would make the clients the
 * bottleneck instead of the server under test).
 */
const SCHED = Buffer.from('"sched":');
const OFFSET = Buffer.from('"offset":');
const SEQ = Buffer.from('"sequence_number":');

/** The number right after `at`, or NaN. Decimal point allowed. */
function numberAt(buf: Buffer, at: number): number {
  let end = at;
  while (end < buf.length) {
    const c = buf[end]!;
    if ((c >= 48 && c <= 57) || c === 46 || c === 45) end++;
    else break;
  }
  return end > at ? Number(buf.toString('latin1', at, end)) : NaN;
}

function allAfter(buf: Buffer, key: Buffer, out: number[]): number[] {
  let i = buf.indexOf(key);
  while (i !== -1) {
    out.push(numberAt(buf, i + key.length));
    i = buf.indexOf(key, i + key.length);
  }
  return out;
}

export const scheds = (buf: Buffer, out: number[] = []): number[] => allAfter(buf, SCHED, out);
export const offsets = (buf: Buffer, out: number[] = []): number[] => allAfter(buf, OFFSET, out);

/** The envelope's `sequence_number` (the first one in the frame; events in a batch carry none). */
export function sequenceNumber(buf: Buffer): number {
  const i = buf.indexOf(SEQ);
  return i === -1 ? NaN : numberAt(buf, i + SEQ.length);
}

const SINGLE_EVENT = Buffer.from('{"sequence_number"');
const BATCH = Buffer.from('{"type":"batch_update"');

/** A live event frame: one event (sequence number spliced in front) or a `batch_update`. */
export const isLiveFrame = (buf: Buffer): boolean =>
  buf.subarray(0, SINGLE_EVENT.length).equals(SINGLE_EVENT) || buf.subarray(0, BATCH.length).equals(BATCH);
