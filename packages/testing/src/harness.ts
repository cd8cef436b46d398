/**
 * Test harness for TradeSync's own tests: a real gateway on a free port (cleaned up
 * with `await using`), a recording WebSocket client, HTTP helpers and entity builders.
 * One file on purpose: every protocol test imports these together.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { WebSocket } from 'ws';
import { pino } from 'pino';
import { DEFAULT_CONFIG, Gateway, type GatewayConfig, type GatewayOptions } from '@tradesync/server';
import { REPLY_TYPES } from '@tradesync/protocol';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** A configuration for tests: a fresh data dir, any free port, quiet logs. */
export function testConfig(overrides: DeepPartial<GatewayConfig> = {}, dataDir?: string): GatewayConfig {
  const base = structuredClone<GatewayConfig>(DEFAULT_CONFIG);
  const merged: GatewayConfig = {
    ...base,
    port: 0,
    simulator: false,
    logLevel: 'silent',
    dataDir: dataDir ?? mkdtempSync(join(tmpdir(), 'tradesync-test-')),
    ...(overrides as Partial<GatewayConfig>),
    heartbeat: { ...base.heartbeat, ...overrides.heartbeat },
    limits: { ...base.limits, ...overrides.limits },
    history: { ...base.history, ...overrides.history },
    auth: { ...base.auth, ...overrides.auth },
  };
  return merged;
}

export interface TestGateway extends AsyncDisposable {
  readonly gateway: Gateway;
  readonly url: string;
  readonly wsUrl: string;
  readonly dataDir: string;
  /** Stops the gateway (the data dir is kept until dispose). */
  stop(): Promise<void>;
}

/** Starts a real gateway on a free port; `await using` stops it and removes its data. */
export async function startGateway(overrides: DeepPartial<GatewayConfig> = {}, options: Partial<GatewayOptions> & { dataDir?: string; keepData?: boolean } = {}): Promise<TestGateway> {
  const config = testConfig(overrides, options.dataDir);
  const gateway = new Gateway({ logger: pino({ level: 'silent' }), ...options, config });
  await gateway.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await gateway.stop();
  };
  return {
    gateway,
    url: gateway.url,
    wsUrl: gateway.wsUrl,
    dataDir: config.dataDir,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      if (!options.keepData) rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

export type Message = Record<string, unknown> & { type: string; sequence_number: number };

/**
 * A plain WebSocket client for protocol tests: records every message, waits for the
 * next one matching a predicate (never sleeps), and reports how the socket closed.
 */
export class TestClient implements AsyncDisposable {
  readonly messages: Message[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ match: (m: Message) => boolean; resolve: (m: Message) => void; from: number }> = [];
  #seen = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse((data as Buffer).toString()) as Message;
      this.messages.push(message);
      for (const w of [...this.#waiters]) {
        if (this.messages.length - 1 >= w.from && w.match(message)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(message);
        }
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async connect(url: string): Promise<TestClient> {
    const socket = new WebSocket(url);
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    await client.next((m) => m.type === 'connected');
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Sends a request and waits for the reply echoing its id. */
  async request(type: string, data?: Record<string, unknown>, timeoutMs = 5000): Promise<Message> {
    const id = `r${Math.random().toString(36).slice(2)}`;
    const reply = this.next((m) => m.id === id, timeoutMs);
    this.send(data === undefined ? { id, type } : { id, type, data });
    return reply;
  }

  /** The next message (not yet returned by `next`) matching `match`. */
  next(match: (m: Message) => boolean = () => true, timeoutMs = 5000): Promise<Message> {
    for (let i = this.#seen; i < this.messages.length; i++) {
      const m = this.messages[i]!;
      if (match(m)) {
        this.#seen = i + 1;
        return Promise.resolve(m);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching message within ${timeoutMs} ms; last: ${JSON.stringify(this.messages.at(-1))}`)), timeoutMs);
      this.#waiters.push({
        match,
        from: this.#seen,
        resolve: (m) => {
          clearTimeout(timer);
          this.#seen = this.messages.indexOf(m) + 1;
          resolve(m);
        },
      });
    });
  }

  /** Every live event received so far, flattening `batch_update` frames. */
  events(stream?: string): Array<Record<string, unknown> & { offset: number; stream: string; type: string }> {
    const out: Array<Record<string, unknown> & { offset: number; stream: string; type: string }> = [];
    for (const m of this.messages) {
      const list = m.type === 'batch_update' ? (m.events as Message[]) : typeof m.offset === 'number' && !(REPLY_TYPES as readonly string[]).includes(m.type) ? [m] : [];
      for (const e of list) if (!stream || e.stream === stream) out.push(e as never);
    }
    return out;
  }

  close(): void {
    this.socket.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close();
      await this.closed;
    }
  }
}

/**
 * Publishes over HTTP like any producer; returns the JSON answer. Each call uses a
 * fresh connection (no keep-alive pool), so a restarted server on the same port is
 * never sent a request over a socket the old one closed.
 */
export async function publish(baseUrl: string, events: unknown[], token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return httpJson('POST', `${baseUrl}/api/v1/events`, events, token);
}

/** One HTTP request with a JSON body (or none) on a fresh connection. */
export function httpJson(method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        agent: false,
        headers: {
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { text } });
          }
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export const tick = (symbol: string, price: string) => ({
  stream: `market:${symbol}`,
  type: 'market:tick',
  data: { symbol, price, timestamp: new Date().toISOString() },
});

let orderSeq = 0;
export const order = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `orders:${account}`,
  type: 'order:updated',
  data: {
    order_id: `ord-${++orderSeq}`,
    symbol: 'BTC-USD',
    side: 'buy',
    order_type: 'limit',
    quantity: '0.5',
    price: '42000.00',
    filled_quantity: '0',
    status: 'open',
    session_id: 's1',
    created_at: new Date().toISOString(),
    ...overrides,
  },
});

/* ---------------------------------------------------------------------------
 * Raw sockets, HTTP, metrics and entity builders for protocol tests.
 * ------------------------------------------------------------------------- */

/** Opens a plain `ws` client (any `ws` options, e.g. `autoPong: false`) and waits until it is open. */
export async function openSocket(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  const socket = new WebSocket(url, options);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

/** A GET (or any method) with an optional bearer token; parses JSON answers, keeps text otherwise. */
export async function http(
  baseUrl: string,
  path: string,
  init: { method?: string; body?: unknown; token?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON (e.g. /metrics): callers read `text`.
  }
  return { status: res.status, body, text };
}

/**
 * The sum of the samples of a Prometheus metric in `GET /metrics` whose labels
 * include `labels` (0 when there is none). `name` is the full sample name, e.g.
 * `tradesync_append_to_send_seconds_count`.
 */
export async function metric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { text } = await http(baseUrl, '/metrics');
  return metricFrom(text, name, labels);
}

export function metricFrom(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) sum += Number(m[4]);
  }
  return sum;
}

const nowIso = () => new Date().toISOString();

export const signal = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `signals:${account}`,
  type: 'signal:new',
  data: { id: `sig-${++orderSeq}`, symbol: 'BTC-USD', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: 's1', created_at: nowIso(), ...overrides },
});

export const position = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `portfolio:${account}`,
  type: 'position:updated',
  data: { symbol: 'BTC-USD', side: 'long', quantity: '0.5', avg_price: '41000.00', mark_price: '42000.00', unrealized_pnl: '500.00', ...overrides },
});

export const balance = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `portfolio:${account}`,
  type: 'balance:updated',
  data: { currency: 'USD', total: '10000.00', available: '9000.00', reserved: '1000.00', ...overrides },
});

export const instance = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `state_machines:${account}`,
  type: 'instance_added',
  data: { instance_id: `inst-${++orderSeq}`, session_id: 's1', strategy: 'wyckoff', symbol: 'BTC-USD', state: 'MONITORING', ...overrides },
});

export const indicator = (account: string, overrides: Record<string, unknown> = {}) => ({
  stream: `indicators:${account}`,
  type: 'indicator:updated',
  data: { symbol: 'BTC-USD', name: 'rsi', value: '55.5', ...overrides },
});
