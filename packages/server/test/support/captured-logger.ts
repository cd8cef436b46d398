import { Writable } from 'node:stream';
import { pino, type Level } from 'pino';

/** A logger at `level` whose JSON lines a test can read. */
export function capturedLogger(level: Level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
