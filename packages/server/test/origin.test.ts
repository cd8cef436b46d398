import { request } from 'node:http';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig } from '../src/index.js';
import { OriginPolicy } from '../src/http/origin.js';
import { capturedLogger } from './support/captured-logger.js';
import { http, metric, order, startGateway, TestClient } from '@tradesync/testing';

const EVIL = 'http://evil.example';

/** The status of a raw WebSocket upgrade (101 when it is accepted) with the given headers. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/ws`, {
      agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A GET over node:http, which (unlike fetch) lets a test set `Host`. */
function getStatus(url: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent: false, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a `ws` client as a browser page of `origin` would; resolves to 'open' or the HTTP status that refused it. */
function connectAs(wsUrl: string, origin: string): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, { origin });
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    socket.once('error', (err) => reject(err));
  });
}


const commands = () => {
  const received: string[] = [];
  return {
    received,
    handler: {
      actions: ['place_order'],
      handle: async (command: { action: string }) => {
        received.push(command.action);
        return { success: true, result: {} };
      },
    },
  };
};

describe('a web page of a foreign origin cannot reach the gateway (cross-site WebSocket hijacking)', () => {
  it('refuses its WebSocket upgrade with HTTP 403 before a socket exists, logs it and counts it', async () => {
    const { logger, lines } = capturedLogger();
    await using gw = await startGateway({}, { logger });
    expect(await upgradeStatus(gw.url, { origin: EVIL })).toBe(403);
    expect(await connectAs(gw.wsUrl, EVIL)).toBe(403);
    expect(await connectAs(gw.wsUrl, 'null')).toBe(403);
    expect((await http(gw.url, '/api/admin/websocket/connections')).body.count).toBe(0);
    expect(await metric(gw.url, 'tradesync_requests_refused_total', { reason: 'origin' })).toBe(3);
    const refusal = lines.find((l) => String(l.msg).includes('refused a WebSocket upgrade'));
    expect(refusal).toMatchObject({ level: 40, origin: EVIL });
  });

  it('logs a loop of refused upgrades once per address and window, counting every one', async () => {
    const { logger, lines } = capturedLogger();
    await using gw = await startGateway({}, { logger });
    for (let i = 0; i < 50; i++) expect(await upgradeStatus(gw.url, { origin: EVIL })).toBe(403);
    expect(lines.filter((l) => String(l.msg).includes('refused a WebSocket upgrade'))).toHaveLength(1);
    expect(await metric(gw.url, 'tradesync_requests_refused_total', { reason: 'origin' })).toBe(50);
  });

  it('accepts the gateway\'s own page under every loopback name, and clients that send no Origin', async () => {
    await using gw = await startGateway();
    const port = gw.gateway.port;
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`, `HTTP://LOCALHOST:${port}`]) {
      expect(await connectAs(gw.wsUrl, origin), origin).toBe('open');
    }
    await using bot = await TestClient.connect(gw.wsUrl);
    expect((await bot.request('ping')).type).toBe('pong');
    // Same host, another port: another origin (another local app), refused.
    expect(await connectAs(gw.wsUrl, `http://127.0.0.1:${port + 1}`)).toBe(403);
  });

  it('refuses its state-changing REST calls with 403 ORIGIN_NOT_ALLOWED: no order placed, no event appended', async () => {
    const { received, handler } = commands();
    await using gw = await startGateway({}, { commands: handler });
    const headers = { origin: EVIL };
    const command = await http(gw.url, '/api/v1/commands', { body: { action: 'place_order', account: 'demo' }, headers });
    expect(command.status).toBe(403);
    expect(command.body).toMatchObject({ success: false, error: { code: 'ORIGIN_NOT_ALLOWED' } });
    expect(received).toEqual([]);
    const events = await http(gw.url, '/api/v1/events', { body: [order('demo')], headers });
    expect(events.status).toBe(403);
    expect((await http(gw.url, '/api/v1/streams/orders:demo/events')).body.head).toBe(0);
    // A form-encoded or text/plain POST (no preflight in a browser) is refused the same way.
    const text = await http(gw.url, '/api/logs', { method: 'POST', body: 'x', headers: { ...headers, 'content-type': 'text/plain' } });
    expect(text.status).toBe(403);
    // The preflight a browser sends before a JSON POST gets no CORS grant.
    const preflight = await fetch(`${gw.url}/api/v1/commands`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    // The same command without an Origin (a bot, the CLI) runs.
    expect((await http(gw.url, '/api/v1/commands', { body: { action: 'place_order', account: 'demo' } })).status).toBe(200);
    expect(received).toEqual(['place_order']);
  });

  it('refuses its reads of the API too, and never grants it CORS on open routes', async () => {
    await using gw = await startGateway();
    const snapshot = await http(gw.url, '/api/state/snapshot', { headers: { origin: EVIL } });
    expect(snapshot.status).toBe(403);
    const health = await fetch(`${gw.url}/health`, { headers: { origin: EVIL } });
    expect(health.status).toBe(200);
    expect(health.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a request naming a foreign Host on a loopback bind (DNS rebinding), REST and upgrade alike', async () => {
    await using gw = await startGateway();
    const host = `rebind.evil.example:${gw.gateway.port}`;
    expect(await getStatus(gw.url, '/api/state/snapshot', { host })).toBe(403);
    expect(await upgradeStatus(gw.url, { host })).toBe(403);
    expect(await metric(gw.url, 'tradesync_requests_refused_total', { reason: 'host' })).toBe(2);
    expect(await getStatus(gw.url, '/api/state/snapshot', { host: `localhost:${gw.gateway.port}` })).toBe(200);
  });
});

describe('allowed_origins', () => {
  it('lets a listed page open the WebSocket and call the API with CORS, and still refuses every other origin', async () => {
    const desk = 'http://desk.example:5173';
    const { received, handler } = commands();
    await using gw = await startGateway({ allowedOrigins: [desk] }, { commands: handler });
    expect(await connectAs(gw.wsUrl, desk)).toBe('open');
    expect(await connectAs(gw.wsUrl, 'http://desk.example:5174')).toBe(403);
    const preflight = await fetch(`${gw.url}/api/v1/commands`, {
      method: 'OPTIONS',
      headers: { origin: desk, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(desk);
    const answer = await fetch(`${gw.url}/api/v1/commands`, {
      method: 'POST',
      headers: { origin: desk, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'place_order' }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBe(desk);
    expect(received).toEqual(['place_order']);
    // Its host may be named in Host (a reverse proxy that keeps it).
    expect(await getStatus(gw.url, '/api/state/snapshot', { host: 'desk.example' })).toBe(200);
  });

  it('refuses "*" without auth when the configuration is loaded, and accepts it with auth, warning at start', async () => {
    expect(() => loadConfig({ env: { TRADESYNC_ALLOWED_ORIGINS: '*' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { TRADESYNC_ALLOWED_ORIGINS: '*' } })).toThrow(/only with auth on/);
    const config = loadConfig({ env: { TRADESYNC_ALLOWED_ORIGINS: '*, http://a.example', TRADESYNC_AUTH__SECRET: 's'.repeat(32) } });
    expect(config.allowedOrigins).toEqual(['*', 'http://a.example']);

    const secret = 'k'.repeat(32);
    const { logger, lines } = capturedLogger();
    await using gw = await startGateway({ allowedOrigins: ['*'], auth: { enabled: true, secret } }, { logger });
    expect(lines.some((l) => l.level === 40 && String(l.msg).includes('allowed_origins contains "*"'))).toBe(true);
    expect(await connectAs(gw.wsUrl, EVIL)).toBe('open');
    // The page still needs a token for anything.
    const token = await new SignJWT({ accounts: ['demo'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1m').sign(new TextEncoder().encode(secret));
    expect((await http(gw.url, '/api/state/snapshot', { headers: { origin: EVIL } })).status).toBe(401);
    expect((await http(gw.url, '/api/state/snapshot', { headers: { origin: EVIL }, token })).status).toBe(200);
  });

  it('rejects entries that are not origins, naming the setting', () => {
    for (const bad of ['evil.example', 'http://a.example/', 'http://a.example/path', 'ftp://a.example', 'http://user@a.example']) {
      expect(() => loadConfig({ env: { TRADESYNC_ALLOWED_ORIGINS: bad } }), bad).toThrow(/allowed_origins/);
    }
    expect(() => loadConfig({ env: { TRADESYNC_TRUSTED_PROXIES: 'not-an-address' } })).toThrow(/trusted_proxies/);
    expect(loadConfig({ env: { TRADESYNC_TRUSTED_PROXIES: '10.0.0.0/8, loopback' } }).trustedProxies).toEqual(['10.0.0.0/8', 'loopback']);
    expect(loadConfig({ flags: { allowedOrigins: 'https://desk.example.com,http://localhost:5173' } }).allowedOrigins).toEqual([
      'https://desk.example.com',
      'http://localhost:5173',
    ]);
  });
});

describe('OriginPolicy', () => {
  it('knows a loopback gateway by its loopback names on its port, with the default port left out as browsers do', () => {
    const policy = new OriginPolicy('127.0.0.1', 80, []);
    expect(policy.judge(undefined)).toBe('none');
    expect(policy.judge('http://localhost')).toBe('own');
    expect(policy.judge('http://127.0.0.1')).toBe('own');
    expect(policy.judge('http://localhost:8000')).toBe('foreign');
    expect(policy.judge('null')).toBe('foreign');
    expect(policy.judge('garbage')).toBe('foreign');
    expect(policy.allowsHost('localhost')).toBe(true);
    expect(policy.allowsHost('127.0.0.1:80')).toBe(true);
    expect(policy.allowsHost('evil.example')).toBe(false);
  });

  it('takes a wildcard bind to answer under every local address, and checks no Host (auth is on there)', () => {
    const policy = new OriginPolicy('0.0.0.0', 8000, ['https://desk.example.com']);
    expect(policy.judge('http://127.0.0.1:8000')).toBe('own');
    expect(policy.judge('https://desk.example.com')).toBe('allowed');
    expect(policy.judge('https://desk.example.com:8443')).toBe('foreign');
    expect(policy.allowsHost('anything.example')).toBe(true);
  });
});
