import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Child loggers carry `connection_id`, `msg_type` and
 * `request_id` so one connection's story can be followed with a grep.
 *
 * `pretty` (a person at a terminal: `tradesync serve` passes `process.stdout.isTTY`)
 * writes readable lines through pino-pretty instead; machines keep the JSON.
 */
export function createLogger(level: LoggerOptions['level'] = 'info', destination?: NodeJS.WritableStream, options: { pretty?: boolean } = {}): Logger {
  const base: LoggerOptions = { level, base: { service: 'tradesync' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (destination) return pino(base, destination as pino.DestinationStream);
  if (options.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return pino(base);
}
