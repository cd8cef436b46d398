import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { describeStatus, TradeSyncClient, type ClientStatus, type LiveEvent, type Logger, type SyncedInfo } from '@tradesync/client';

const HELP = `Usage: tradesync tail <stream...> [options]

A live terminal view of one or more streams: every event as it arrives, the
connection status when it changes, and how each (re)sync went.

Streams are named <kind>:<account> (orders:demo, portfolio:demo, ...) or market:<symbol>.

Options:
  --url <ws-url>     gateway WebSocket URL (default ws://127.0.0.1:8000/ws)
  --token <jwt>      token for a gateway that requires auth
  --json             one JSON object per line instead of text`;

/** What the view prints: text for people, or JSON lines for scripts. */
interface Printer {
  event(event: LiveEvent): void;
  status(status: ClientStatus): void;
  synced(info: SyncedInfo): void;
  syncFailed(stream: string, error: Error): void;
}

/** `{"order_id":"o1","status":"open"}` without quotes around keys: short enough for one line. */
function compact(data: Record<string, unknown>, max = 160): string {
  const text = Object.entries(data)
    .map(([key, value]) => `${key}=${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`)
    .join(' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "Reconnecting (attempt 3/10) — retrying in 8s" */
function statusLine(status: ClientStatus, now = Date.now()): string {
  const words = describeStatus(status);
  if (status.state === 'reconnecting' && status.nextRetryAt !== null) {
    return `${words} — retrying in ${Math.max(0, Math.ceil((status.nextRetryAt - now) / 1000))}s`;
  }
  if (status.state === 'failed') return `${words} — gave up after ${status.maxAttempts} attempts`;
  return words;
}

function textPrinter(write: (line: string) => void): Printer {
  const time = () => new Date().toISOString().slice(11, 23);
  return {
    event: (e) => write(`${time()}  ${e.stream}  #${e.offset}  ${e.type}  ${compact(e.data)}`),
    status: (s) => write(`${time()}  -- ${statusLine(s)}`),
    synced: (i) =>
      write(
        i.recovered
          ? `${time()}  -- ${i.stream} recovered: ${i.replayed} missed event${i.replayed === 1 ? '' : 's'} replayed (at #${i.offset})`
          : `${time()}  -- ${i.stream} resynced from a snapshot at #${i.snapshotOffset ?? i.offset}`,
      ),
    syncFailed: (stream, error) => write(`${time()}  -- ${stream} sync failed: ${error.message}`),
  };
}

function jsonPrinter(write: (line: string) => void): Printer {
  const line = (value: Record<string, unknown>) => write(JSON.stringify({ at: new Date().toISOString(), ...value }));
  return {
    event: (e) => line({ kind: 'event', stream: e.stream, epoch: e.epoch, offset: e.offset, type: e.type, data: e.data }),
    status: (s) => line({ kind: 'status', state: s.state, attempt: s.attempt, max_attempts: s.maxAttempts, next_retry_at: s.nextRetryAt, text: statusLine(s) }),
    synced: (i) => line({ kind: 'synced', stream: i.stream, recovered: i.recovered, replayed: i.replayed, epoch: i.epoch, offset: i.offset }),
    syncFailed: (stream, error) => line({ kind: 'sync_failed', stream, error: error.message }),
  };
}

/** SDK warnings go to stderr, so stdout stays the view (and valid JSON lines with --json). */
const stderrLogger: Logger = {
  debug: () => {},
  warn: (message, context) => process.stderr.write(`warn: ${message} ${context ? JSON.stringify(context) : ''}\n`),
  error: (message, context) => process.stderr.write(`error: ${message} ${context ? JSON.stringify(context) : ''}\n`),
};

export async function tail(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: 'ws://127.0.0.1:8000/ws' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    console.error(`tradesync tail: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals: streams } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (streams.length === 0) {
    console.error(`tradesync tail: name at least one stream\n\n${HELP}`);
    return 2;
  }

  const write = (line: string) => process.stdout.write(`${line}\n`);
  const print = values.json ? jsonPrinter(write) : textPrinter(write);
  let client: TradeSyncClient;
  try {
    client = new TradeSyncClient({
      url: values.url,
      WebSocket: WebSocket as never,
      logger: stderrLogger,
      ...(values.token !== undefined ? { token: values.token } : {}),
    });
  } catch (err) {
    console.error(`tradesync tail: ${(err as Error).message}`);
    return 2;
  }

  // A status line only when what it says changes (not on every message's bookkeeping).
  let shown = '';
  client.on('status', (status) => {
    const key = `${status.state}/${status.attempt}/${status.nextRetryAt}/${status.degraded}`;
    if (key === shown) return;
    shown = key;
    print.status(status);
  });
  for (const stream of streams) {
    try {
      client.subscribe(stream, {
        onEvent: (event) => print.event(event),
        onSynced: (info) => print.synced(info),
        onSyncFailed: (info) => print.syncFailed(info.stream, info.error),
      });
    } catch (err) {
      console.error(`tradesync tail: ${(err as Error).message}`);
      client.disconnect();
      return 2;
    }
  }

  return new Promise<number>((resolve) => {
    const stop = () => {
      client.disconnect();
      resolve(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    client.on('status', (status) => {
      if (status.state === 'failed') {
        client.disconnect();
        resolve(1);
      }
    });
  });
}
