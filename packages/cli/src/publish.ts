import { parseArgs } from 'node:util';

const HELP = `Usage: tradesync publish <stream> <type> <json> [options]

Publishes one event through POST /api/v1/events, as any producer would, and
prints the offset it was given.

  tradesync publish market:BTC-USD market:tick \\
    '{"symbol":"BTC-USD","price":"42000.00","timestamp":"2025-01-01T00:00:00Z"}'

Options:
  --url <url>      gateway base URL (default $TRADESYNC_URL or http://127.0.0.1:8000)
  --token <jwt>    bearer token (default $TRADESYNC_TOKEN)

See docs/PRODUCERS.md for the event types and their payloads.`;

export async function publish(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    console.error(`tradesync publish: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [stream, type, json] = positionals;
  if (!stream || !type || json === undefined || positionals.length > 3) {
    console.error(`tradesync publish: expected <stream> <type> <json>\n\n${HELP}`);
    return 2;
  }
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    console.error(`tradesync publish: the data is not valid JSON: ${(err as Error).message}`);
    return 2;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    console.error('tradesync publish: the data must be a JSON object');
    return 2;
  }

  const base = (values.url ?? process.env.TRADESYNC_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, '');
  const token = values.token ?? process.env.TRADESYNC_TOKEN;
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify([{ stream, type, data }]),
    });
  } catch (err) {
    console.error(`tradesync publish: cannot reach ${base}: ${(err as Error).message}`);
    return 1;
  }
  const body = (await res.json().catch(() => ({}))) as { offsets?: Array<{ stream: string; epoch: string; offset: number }>; error?: { code?: string; message?: string } };
  if (!res.ok) {
    console.error(`tradesync publish: ${res.status} ${body.error?.code ?? ''} ${body.error?.message ?? ''}`.trim());
    return 1;
  }
  const stored = body.offsets?.[0];
  console.log(stored ? `${stored.stream} offset ${stored.offset} (epoch ${stored.epoch})` : JSON.stringify(body));
  return 0;
}
