/**
 * The auth matrix over real sockets: every supported algorithm (HS256 with a shared
 * secret; RS256, ES256 and EdDSA through a JWKS served by a local HTTP server) is
 * accepted on each way in (`?token=`, an `auth` message, `Authorization: Bearer`),
 * every kind of bad token is refused on each of them, a token for one account is
 * refused every other account everywhere, and a token that runs out mid-session ends
 * the session on time (4101) unless it was refreshed.
 *
 * auth.test.ts covers the authenticator as a unit and auth-ws.test.ts the basic flows
 * on one HS256 gateway; this file crosses algorithms, transports and failure kinds.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { http, order, publish, signal, startGateway, TestClient, type Message, type TestGateway } from '@tradesync/testing';

const SECRET = 'auth-matrix-hs256-secret-long-enough-for-tests';
const ISSUER = 'https://idp.tradesync.test';
const AUDIENCE = 'tradesync-gateway';

type Alg = 'HS256' | 'RS256' | 'ES256' | 'EdDSA';
type Asymmetric = Exclude<Alg, 'HS256'>;
type GatewayName = 'hs256' | 'jwks';

const ALGS: readonly Alg[] = ['HS256', 'RS256', 'ES256', 'EdDSA'];
const ASYMMETRIC: readonly Asymmetric[] = ['RS256', 'ES256', 'EdDSA'];
/** The gateway that verifies each algorithm. */
const GATEWAY_OF: Record<Alg, GatewayName> = { HS256: 'hs256', RS256: 'jwks', ES256: 'jwks', EdDSA: 'jwks' };
const KID: Record<Asymmetric, string> = { RS256: 'rsa-1', ES256: 'ec-1', EdDSA: 'ed-1' };

interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/* ------------------------------------------------------------ shared fixtures */

let jwksServer: Server;
let jwksUrl: string;
const keys = {} as Record<Asymmetric, KeyPair>;
/** Same algorithms, not in the JWKS: their tokens must be refused even under a known kid. */
const strangers = {} as Record<Asymmetric, KeyPair>;
let rsaJwk: JWK;
const gateways = {} as Record<GatewayName, TestGateway>;

const nowS = (): number => Math.floor(Date.now() / 1000);
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

interface SignOptions {
  /** Seconds since the epoch; default one hour ahead. `null` leaves the claim out. */
  exp?: number | null;
  nbf?: number;
  /** `null` leaves the claim out; default ISSUER. */
  iss?: string | null;
  /** `null` leaves the claim out; default AUDIENCE. */
  aud?: string | null;
  kid?: string;
  /** Sign with this key instead of the algorithm's configured one. */
  key?: CryptoKey | Uint8Array;
}

/** A token with the claims the gateways expect unless `opts` says otherwise. */
function sign(alg: Alg, claims: JWTPayload, opts: SignOptions = {}): Promise<string> {
  const kid = opts.kid ?? (alg === 'HS256' ? undefined : KID[alg]);
  const jwt = new SignJWT(claims).setProtectedHeader({ alg, ...(kid !== undefined ? { kid } : {}) }).setIssuedAt();
  const exp = opts.exp === undefined ? nowS() + 3600 : opts.exp;
  if (exp !== null) jwt.setExpirationTime(exp);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  const iss = opts.iss === undefined ? ISSUER : opts.iss;
  if (iss !== null) jwt.setIssuer(iss);
  const aud = opts.aud === undefined ? AUDIENCE : opts.aud;
  if (aud !== null) jwt.setAudience(aud);
  const key = opts.key ?? (alg === 'HS256' ? new TextEncoder().encode(SECRET) : keys[alg].privateKey);
  return jwt.sign(key);
}

/** An unsecured JWT (`alg: none`), built by hand: jose refuses to make one. */
function unsecured(claims: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', typ: 'JWT', ...header })}.${b64url({ iss: ISSUER, aud: AUDIENCE, exp: nowS() + 3600, ...claims })}.`;
}

/** An HS256 token whose HMAC secret is `secret`, named as an RSA key of the JWKS. */
function hmacWith(secret: Uint8Array, claims: JWTPayload): Promise<string> {
  return sign('HS256', claims, { key: secret, kid: KID.RS256 });
}

/** Rows as `[name, row]`, so each test is named by its row in full (`$name` is truncated). */
const named = <T extends { readonly name: string }>(rows: readonly T[]): Array<[string, T]> => rows.map((row) => [row.name, row]);

const untilMs = (at: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Opens a socket with `?token=` and reports how it ended and what arrived before. */
async function urlTokenOutcome(wsUrl: string, token: string): Promise<{ code: number; messages: Message[] }> {
  const socket = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`);
  const messages: Message[] = [];
  socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString()) as Message));
  socket.on('error', () => {});
  const code = await within(new Promise<number>((resolve) => socket.on('close', (c) => resolve(c))), 5000, 'close after a refused URL token');
  return { code, messages };
}

beforeAll(async () => {
  for (const alg of ASYMMETRIC) {
    keys[alg] = await generateKeyPair(alg);
    strangers[alg] = await generateKeyPair(alg);
  }
  const jwks: JWK[] = [];
  for (const alg of ASYMMETRIC) jwks.push({ ...(await exportJWK(keys[alg].publicKey)), kid: KID[alg], alg, use: 'sig' });
  rsaJwk = jwks[0]!;
  jwksServer = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwks }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  gateways.hs256 = await startGateway({ auth: { enabled: true, secret: SECRET, issuer: ISSUER, audience: AUDIENCE } });
  gateways.jwks = await startGateway({ auth: { enabled: true, jwksUrl, issuer: ISSUER, audience: AUDIENCE } });
});

afterAll(async () => {
  await gateways.hs256?.[Symbol.asyncDispose]();
  await gateways.jwks?.[Symbol.asyncDispose]();
  await new Promise<void>((resolve) => (jwksServer ? jwksServer.close(() => resolve()) : resolve()));
});

/* ------------------------------------------------------------ 1. accepted */

describe.each(ALGS)('a valid %s token', (alg) => {
  const gw = () => gateways[GATEWAY_OF[alg]];
  const claims = { sub: `user-${alg}`, accounts: ['A'], trade: true };

  it('is accepted in the URL: connected, authenticated with its claims, and may subscribe its account', async () => {
    const token = await sign(alg, claims);
    await using client = await TestClient.connect(`${gw().wsUrl}?token=${token}`);
    expect(client.messages[0]).toMatchObject({ type: 'connected', auth_required: true });
    expect(await client.next((m) => m.type === 'authenticated')).toMatchObject({ subject: `user-${alg}`, accounts: ['A'], can_trade: true });
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed', stream: 'orders:A' });
  });

  it('is accepted in an auth message, after which the connection is served', async () => {
    const token = await sign(alg, claims);
    await using client = await TestClient.connect(gw().wsUrl);
    // Before authenticating, nothing but auth and ping is served.
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'error', error: { code: 'UNAUTHORIZED' } });
    expect(await client.request('auth', { token })).toMatchObject({ type: 'authenticated', subject: `user-${alg}`, accounts: ['A'] });
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed', stream: 'orders:A' });
  });

  it('is accepted as Authorization: Bearer on REST', async () => {
    const token = await sign(alg, claims);
    const res = await http(gw().url, '/api/state/snapshot?account=A', { token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ account: 'A' });
  });

  it('is accepted with nbf 2 s ahead, inside the 5 s clock tolerance', async () => {
    const token = await sign(alg, claims, { nbf: nowS() + 2 });
    expect((await http(gw().url, '/api/state/snapshot?account=A', { token })).status).toBe(200);
    await using client = await TestClient.connect(`${gw().wsUrl}?token=${token}`);
    expect((await client.next((m) => m.type === 'authenticated')).type).toBe('authenticated');
  });
});

/* ------------------------------------------------------------ 2. refused */

interface Rejection {
  readonly name: string;
  readonly gateway: GatewayName;
  readonly token: () => Promise<string> | string;
}

const claimsA = { sub: 'mallory', accounts: ['A'], trade: true, publish: true };

const REJECTIONS: readonly Rejection[] = [
  ...ALGS.flatMap((alg): Rejection[] => [
    { name: `an ${alg} token that expired a minute ago`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { exp: nowS() - 60 }) },
    // The gateway holds exp to its own clock (it closes with 4101 at exp), tolerance or not.
    { name: `an ${alg} token that expired 2 s ago, inside the clock tolerance`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { exp: nowS() - 2 }) },
    { name: `an ${alg} token not valid for another 30 s (nbf beyond the 5 s tolerance)`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { nbf: nowS() + 30 }) },
    { name: `an ${alg} token from the wrong issuer`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { iss: 'https://evil.example' }) },
    { name: `an ${alg} token without an issuer`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { iss: null }) },
    { name: `an ${alg} token for the wrong audience`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { aud: 'another-service' }) },
    { name: `an ${alg} token without an audience`, gateway: GATEWAY_OF[alg], token: () => sign(alg, claimsA, { aud: null }) },
  ]),
  { name: 'an unsecured alg:none token (HS256 gateway)', gateway: 'hs256', token: () => unsecured(claimsA) },
  { name: 'an unsecured alg:none token naming a JWKS kid (JWKS gateway)', gateway: 'jwks', token: () => unsecured(claimsA, { kid: KID.RS256 }) },
  { name: 'an alg:none token that still carries a signature', gateway: 'jwks', token: async () => `${unsecured(claimsA)}${(await sign('RS256', claimsA)).split('.')[2]}` },
  { name: 'an HS256 token whose HMAC secret is the RSA public key as PEM', gateway: 'jwks', token: async () => hmacWith(new TextEncoder().encode(await exportSPKI(keys.RS256.publicKey)), claimsA) },
  {
    name: 'an HS256 token whose HMAC secret is the RSA public key as SPKI DER bytes',
    gateway: 'jwks',
    token: async () => {
      const pem = await exportSPKI(keys.RS256.publicKey);
      return hmacWith(new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')), claimsA);
    },
  },
  { name: "an HS256 token whose HMAC secret is the RSA JWK's n (base64url text)", gateway: 'jwks', token: () => hmacWith(new TextEncoder().encode(rsaJwk.n), claimsA) },
  { name: "an HS256 token whose HMAC secret is the RSA JWK's n (decoded bytes)", gateway: 'jwks', token: () => hmacWith(new Uint8Array(Buffer.from(rsaJwk.n!, 'base64url')), claimsA) },
  { name: 'an HS256 token whose HMAC secret is the RSA JWK as JSON', gateway: 'jwks', token: () => hmacWith(new TextEncoder().encode(JSON.stringify(rsaJwk)), claimsA) },
  ...ASYMMETRIC.map(
    (alg): Rejection => ({
      name: `an ${alg} token signed by a key not in the JWKS under the JWKS's kid`,
      gateway: 'jwks',
      token: () => sign(alg, claimsA, { key: strangers[alg].privateKey }),
    }),
  ),
  { name: 'an RS256 token signed by a key not in the JWKS under an unknown kid', gateway: 'jwks', token: () => sign('RS256', claimsA, { key: strangers.RS256.privateKey, kid: 'not-in-the-set' }) },
  { name: 'an HS256 token signed with another secret', gateway: 'hs256', token: () => sign('HS256', claimsA, { key: new TextEncoder().encode('another-secret-that-is-long-enough-too') }) },
  {
    name: 'an HS256 token whose payload was altered after signing',
    gateway: 'hs256',
    token: async () => {
      const [header, , signature] = (await sign('HS256', { sub: 'mallory', accounts: ['A'] })).split('.');
      return `${header}.${b64url({ sub: 'mallory', accounts: '*', trade: true, publish: true, iss: ISSUER, aud: AUDIENCE, exp: nowS() + 3600 })}.${signature}`;
    },
  },
  { name: 'garbage (HS256 gateway)', gateway: 'hs256', token: () => 'garbage' },
  { name: 'garbage (JWKS gateway)', gateway: 'jwks', token: () => 'garbage' },
  { name: 'three dots of nothing (JWKS gateway)', gateway: 'jwks', token: () => 'a.b.c' },
];

describe('a refused token in the URL', () => {
  it.each(named(REJECTIONS))('closes the socket with 4001 before serving anything: %s', async (_name, row) => {
    const outcome = await urlTokenOutcome(gateways[row.gateway].wsUrl, await row.token());
    expect(outcome.code).toBe(4001);
    expect(outcome.messages.filter((m) => m.type !== 'connected' && m.type !== 'error')).toEqual([]);
  });
});

describe('a refused token in an auth message', () => {
  it.each(named(REJECTIONS))('is answered UNAUTHORIZED and the socket closed with 4001: %s', async (_name, row) => {
    await using client = await TestClient.connect(gateways[row.gateway].wsUrl);
    const reply = await client.request('auth', { token: await row.token() });
    expect(reply).toMatchObject({ type: 'error', success: false, error: { code: 'UNAUTHORIZED' } });
    expect((await within(client.closed, 5000, 'close after a refused auth message')).code).toBe(4001);
    expect(client.messages.some((m) => m.type === 'authenticated')).toBe(false);
  });
});

describe('a refused token as Authorization: Bearer', () => {
  it.each(named(REJECTIONS))('is answered 401 UNAUTHORIZED: %s', async (_name, row) => {
    const res = await http(gateways[row.gateway].url, '/api/state/snapshot?account=A', { token: await row.token() });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ success: false, error: { code: 'UNAUTHORIZED' } });
  });
});

/* ------------------------------------------------------------ 3. one account only */

interface WsRow {
  readonly name: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** What the reply must look like. */
  readonly expected: Record<string, unknown>;
}

const FORBIDDEN = { type: 'error', success: false, error: { code: 'FORBIDDEN' } };

const WS_ROWS: readonly WsRow[] = [
  { name: 'subscribing orders:B is FORBIDDEN', type: 'subscribe', data: { stream: 'orders:B' }, expected: FORBIDDEN },
  { name: 'subscribing portfolio:B is FORBIDDEN', type: 'subscribe', data: { stream: 'portfolio:B' }, expected: FORBIDDEN },
  { name: 'subscribing signals:B with since is FORBIDDEN', type: 'subscribe', data: { stream: 'signals:B', since: { epoch: 'e', offset: 0 } }, expected: FORBIDDEN },
  // With `trade` the command passes the trade check and is refused on the account (an `error`, see handlers.ts).
  { name: 'a command for account B is FORBIDDEN', type: 'command', data: { action: 'cancel_order', order_id: 'o1', account: 'B' }, expected: FORBIDDEN },
  { name: 'state_sync_request for account B is FORBIDDEN', type: 'state_sync_request', data: { account: 'B' }, expected: FORBIDDEN },
  { name: 'get_initial_state for account B is FORBIDDEN', type: 'get_initial_state', data: { account: 'B' }, expected: FORBIDDEN },
  { name: 'get_initial_state of orders only for account B is FORBIDDEN', type: 'get_initial_state', data: { account: 'B', include: ['orders'] }, expected: FORBIDDEN },
  // Controls: the same token is served for its own account and for public market data.
  { name: 'subscribing orders:A is allowed', type: 'subscribe', data: { stream: 'orders:A' }, expected: { type: 'subscribed', stream: 'orders:A' } },
  { name: 'subscribing market:BTC-USD is allowed', type: 'subscribe', data: { stream: 'market:BTC-USD' }, expected: { type: 'subscribed' } },
  { name: 'state_sync_request for account A is allowed', type: 'state_sync_request', data: { account: 'A' }, expected: { type: 'state_sync_response', success: true } },
  { name: 'state_sync_request without an account uses the token account A', type: 'state_sync_request', data: {}, expected: { type: 'state_sync_response', success: true } },
  { name: 'get_initial_state for account A is allowed', type: 'get_initial_state', data: { account: 'A' }, expected: { type: 'initial_state', account: 'A' } },
  // No command engine on these gateways: allowed means "unknown command", not "forbidden".
  { name: 'a command for account A passes the access check', type: 'command', data: { action: 'cancel_order', order_id: 'o1', account: 'A' }, expected: { type: 'command_result', success: false, error: { code: 'UNKNOWN_COMMAND' } } },
];

interface RestRow {
  readonly name: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  readonly status: number;
  readonly code?: string;
}

const REST_ROWS: readonly RestRow[] = [
  { name: 'GET /api/state/snapshot?account=B is 403', method: 'GET', path: '/api/state/snapshot?account=B', status: 403, code: 'FORBIDDEN' },
  { name: 'GET /api/state/snapshot?account=A&streams=orders:B is 403', method: 'GET', path: '/api/state/snapshot?account=A&streams=orders:B', status: 403, code: 'FORBIDDEN' },
  { name: 'GET /api/v1/signals?account=B is 403', method: 'GET', path: '/api/v1/signals?account=B', status: 403, code: 'FORBIDDEN' },
  { name: 'GET /api/v1/streams/orders:B/events is 403', method: 'GET', path: '/api/v1/streams/orders%3AB/events', status: 403, code: 'FORBIDDEN' },
  { name: 'GET /api/v1/streams/orders:B/events (unescaped colon) is 403', method: 'GET', path: '/api/v1/streams/orders:B/events', status: 403, code: 'FORBIDDEN' },
  { name: 'POST /api/v1/commands with account B in the body is 403', method: 'POST', path: '/api/v1/commands', body: { action: 'cancel_order', order_id: 'o1', account: 'B' }, status: 403, code: 'FORBIDDEN' },
  { name: 'POST /api/v1/commands?account=B is 403', method: 'POST', path: '/api/v1/commands?account=B', body: { action: 'cancel_order', order_id: 'o1' }, status: 403, code: 'FORBIDDEN' },
  { name: 'POST /api/v1/events to orders:B is 403', method: 'POST', path: '/api/v1/events', body: [order('B')], status: 403, code: 'FORBIDDEN' },
  { name: 'POST /api/v1/events to orders:A and signals:B is 403 as a whole', method: 'POST', path: '/api/v1/events', body: [order('A'), signal('B')], status: 403, code: 'FORBIDDEN' },
  // Controls.
  { name: 'GET /api/state/snapshot?account=A is 200', method: 'GET', path: '/api/state/snapshot?account=A&streams=orders:A,market:BTC-USD', status: 200 },
  { name: 'GET /api/v1/signals?account=A is 200', method: 'GET', path: '/api/v1/signals?account=A', status: 200 },
  { name: 'GET /api/v1/streams/orders:A/events is 200', method: 'GET', path: '/api/v1/streams/orders%3AA/events', status: 200 },
  { name: 'GET /api/v1/streams/market:BTC-USD/events is 200', method: 'GET', path: '/api/v1/streams/market%3ABTC-USD/events', status: 200 },
  { name: 'POST /api/v1/commands for account A passes the access check (400 UNKNOWN_COMMAND)', method: 'POST', path: '/api/v1/commands', body: { action: 'cancel_order', order_id: 'o1', account: 'A' }, status: 400, code: 'UNKNOWN_COMMAND' },
];

/** Heads of the B streams (and A's orders), as an admin sees them: a refused publish must not move them. */
async function heads(gw: TestGateway, admin: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const stream of ['orders:A', 'orders:B', 'signals:B']) {
    out[stream] = (await http(gw.url, `/api/v1/streams/${encodeURIComponent(stream)}/events`, { token: admin })).body.head;
  }
  return out;
}

describe.each(['HS256', 'RS256'] as const)('an %s token for account A only (trade, publish)', (alg) => {
  const gw = () => gateways[GATEWAY_OF[alg]];
  const tokenA = () => sign(alg, { sub: 'alice', accounts: ['A'], trade: true, publish: true });

  it.each(named(WS_ROWS))('over WebSocket: %s', async (_name, row) => {
    await using client = await TestClient.connect(`${gw().wsUrl}?token=${await tokenA()}`);
    await client.next((m) => m.type === 'authenticated');
    expect(await client.request(row.type, row.data)).toMatchObject(row.expected);
    // A refused request never closes the connection: it is still served.
    expect((await client.request('ping')).type).toBe('pong');
  });

  it('over WebSocket after an auth message: subscribing orders:B is FORBIDDEN and nothing of B is delivered', async () => {
    await using client = await TestClient.connect(gw().wsUrl);
    await client.request('auth', { token: await tokenA() });
    expect(await client.request('subscribe', { stream: 'orders:B' })).toMatchObject(FORBIDDEN);
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed' });
    const admin = await sign(alg, { sub: 'ops', accounts: '*', publish: true });
    expect((await publish(gw().url, [order('B'), order('A')], admin)).status).toBe(200);
    await client.next((m) => m.stream === 'orders:A' && m.type === 'order:updated');
    expect(client.events().map((e) => e.stream)).toEqual(['orders:A']);
  });

  it.each(named(REST_ROWS))('over REST: %s', async (_name, row) => {
    const admin = await sign(alg, { sub: 'ops', accounts: '*' });
    const before = await heads(gw(), admin);
    const res = await http(gw().url, row.path, { method: row.method, token: await tokenA(), ...(row.body !== undefined ? { body: row.body } : {}) });
    expect(res.status).toBe(row.status);
    if (row.code !== undefined) expect(res.body).toMatchObject({ error: { code: row.code } });
    // Nothing refused was appended anywhere.
    if (row.status === 403) expect(await heads(gw(), admin)).toEqual(before);
  });
});

/**
 * A minimal WebSocket client on a plain TCP socket (RFC 6455: handshake, masked text
 * frames out, unmasked frames in). Unlike `ws` it goes on writing after the server's
 * close frame, as a misbehaving or slow peer may.
 */
class RawPeer implements AsyncDisposable {
  readonly messages: Message[] = [];
  readonly closeFrame: Promise<{ code: number; at: number }>;
  readonly ended: Promise<void>;
  #buffer = Buffer.alloc(0);
  #waiters: Array<{ match: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  #onClose: (close: { code: number; at: number }) => void = () => {};

  private constructor(private readonly socket: Socket) {
    this.closeFrame = new Promise((resolve) => (this.#onClose = resolve));
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
  }

  static async open(url: string): Promise<RawPeer> {
    const target = new URL(url);
    const socket = connect(Number(target.port), target.hostname);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const peer = new RawPeer(socket);
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const status = head.subarray(0, end).toString().split('\r\n')[0]!;
        if (!status.includes(' 101 ')) return reject(new Error(`upgrade refused: ${status}`));
        socket.on('data', (data: Buffer) => peer.#read(data));
        peer.#read(head.subarray(end + 4));
        resolve();
      };
      socket.on('data', onData);
    });
    await peer.next((m) => m.type === 'connected');
    return peer;
  }

  send(message: unknown): void {
    this.#write(0x1, Buffer.from(JSON.stringify(message)));
  }

  sendClose(code: number): void {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.#write(0x8, payload);
  }

  next(match: (m: Message) => boolean, timeoutMs = 5000): Promise<Message> {
    const found = this.messages.find(match);
    if (found) return Promise.resolve(found);
    return within(new Promise((resolve) => this.#waiters.push({ match, resolve })), timeoutMs, 'a matching message');
  }

  #write(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const head = payload.length < 126 ? Buffer.from([0x80 | opcode, 0x80 | payload.length]) : Buffer.from([0x80 | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
    if (!this.socket.destroyed) this.socket.write(Buffer.concat([head, mask, body]));
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (this.#buffer.length < 2) return;
      const opcode = this.#buffer[0]! & 0x0f;
      let length = this.#buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.#buffer.length < 4) return;
        length = this.#buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.#buffer.length < 10) return;
        length = Number(this.#buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.#buffer.length < offset + length) return;
      const payload = this.#buffer.subarray(offset, offset + length);
      this.#buffer = this.#buffer.subarray(offset + length);
      if (opcode === 0x1) {
        const message = JSON.parse(payload.toString()) as Message;
        this.messages.push(message);
        for (const w of this.#waiters.filter((w) => w.match(message))) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(message);
        }
      } else if (opcode === 0x8) {
        this.#onClose({ code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, at: Date.now() });
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.socket.destroy();
    await this.ended;
  }
}

/* ------------------------------------------------------------ 4. expiry mid-session */

describe('a token that expires while connected', () => {
  let gw: TestGateway;
  let admin: string;
  beforeAll(async () => {
    gw = await startGateway({ auth: { enabled: true, secret: SECRET } });
    admin = await new SignJWT({ sub: 'ops', accounts: '*', publish: true }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  /** An HS256 token for account A that expires at `exp` (seconds), for this gateway (no issuer/audience). */
  const expiring = (exp: number): Promise<string> =>
    new SignJWT({ sub: 'alice', accounts: ['A'] }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));

  it('closes a subscribed connection with 4101 within 1 s after exp, not before', async () => {
    const exp = nowS() + 2;
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${await expiring(exp)}`);
    await client.next((m) => m.type === 'authenticated');
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed' });
    const { code, reason } = await within(client.closed, 5000, 'the 4101 close');
    const lag = Date.now() - exp * 1000;
    expect(code).toBe(4101);
    expect(reason).toBe('token expired');
    expect(lag).toBeGreaterThanOrEqual(-50);
    expect(lag).toBeLessThanOrEqual(1000);
  });

  it('never answers a frame sent after exp, nor delivers an event published after it: the connection is closing', async () => {
    const exp = nowS() + 2;
    // A raw RFC 6455 peer: the `ws` client stops sending once it has read the close frame,
    // but a peer may keep writing, and what it writes after exp must not be served.
    await using peer = await RawPeer.open(`${gw.wsUrl}?token=${await expiring(exp)}`);
    await peer.next((m) => m.type === 'authenticated');
    peer.send({ id: 'sub', type: 'subscribe', data: { stream: 'orders:A' } });
    expect(await peer.next((m) => m.id === 'sub')).toMatchObject({ type: 'subscribed' });
    // Wake just before exp, then write the first moment the clock has passed it.
    await untilMs(exp * 1000 - 20);
    while (Date.now() < exp * 1000) await new Promise((resolve) => setImmediate(resolve));
    const late: Array<[string, Record<string, unknown>]> = [
      ['ping', {}],
      ['subscribe', { stream: 'portfolio:A' }],
      ['state_sync_request', { account: 'A' }],
      ['get_initial_state', {}],
      ['auth', { token: await expiring(exp + 3600) }],
    ];
    for (const [type, data] of late) peer.send({ id: `late-${type}`, type, data });
    await publish(gw.url, [order('A')], admin);
    const close = await within(peer.closeFrame, 5000, 'the 4101 close frame');
    expect(close.code).toBe(4101);
    expect(close.at - exp * 1000).toBeGreaterThanOrEqual(-50);
    expect(close.at - exp * 1000).toBeLessThanOrEqual(1000);
    // Our close reply follows the late frames on the same stream: once the TCP connection ends,
    // everything the server ever sent has arrived, and none of it answers a late frame.
    peer.sendClose(4101);
    await within(peer.ended, 5000, 'the TCP close');
    expect(peer.messages.filter((m) => typeof m.id === 'string' && m.id.startsWith('late-'))).toEqual([]);
    expect(peer.messages.filter((m) => m.stream === 'orders:A' && m.type !== 'subscribed')).toEqual([]);
    // Every frame the server stamps with its send time was sent before exp.
    for (const m of peer.messages.filter((m) => m.stream === undefined || m.type === 'subscribed')) {
      expect(Date.parse(String(m.timestamp)), m.type).toBeLessThan(exp * 1000);
    }
  });

  it('is extended by an auth message with a fresh token: no 4101 at the old exp, 4101 at the new one', async () => {
    const oldExp = nowS() + 2;
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${await expiring(oldExp)}`);
    await client.next((m) => m.type === 'authenticated');
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed' });
    const newExp = oldExp + 2;
    expect(await client.request('auth', { token: await expiring(newExp) })).toMatchObject({ type: 'authenticated', accounts: ['A'] });
    // Past the old exp by the whole allowance the close would have had: still open and served.
    await untilMs(oldExp * 1000 + 1000);
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
    expect((await client.request('ping')).type).toBe('pong');
    await publish(gw.url, [order('A')], admin);
    await client.next((m) => m.stream === 'orders:A' && m.type === 'order:updated');
    const { code } = await within(client.closed, 5000, 'the 4101 close at the new exp');
    const lag = Date.now() - newExp * 1000;
    expect(code).toBe(4101);
    expect(lag).toBeGreaterThanOrEqual(-50);
    expect(lag).toBeLessThanOrEqual(1000);
  });

  it('refuses a refresh with an expired token: UNAUTHORIZED, then 4001', async () => {
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${await expiring(nowS() + 3600)}`);
    await client.next((m) => m.type === 'authenticated');
    expect(await client.request('auth', { token: await expiring(nowS() - 60) })).toMatchObject({ type: 'error', error: { code: 'UNAUTHORIZED' } });
    expect((await within(client.closed, 5000, 'the 4001 close')).code).toBe(4001);
  });

  it('drops, on a refresh for another account, the subscriptions the new token may not read', async () => {
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${await expiring(nowS() + 3600)}`);
    await client.next((m) => m.type === 'authenticated');
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject({ type: 'subscribed' });
    const tokenB = await new SignJWT({ sub: 'bob', accounts: ['B'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    expect(await client.request('auth', { token: tokenB })).toMatchObject({ type: 'authenticated', accounts: ['B'] });
    expect(await client.request('subscribe', { stream: 'orders:B' })).toMatchObject({ type: 'subscribed' });
    await publish(gw.url, [order('A'), order('B')], admin);
    await client.next((m) => m.stream === 'orders:B' && m.type === 'order:updated');
    expect(client.events().map((e) => e.stream)).toEqual(['orders:B']);
    expect(await client.request('subscribe', { stream: 'orders:A' })).toMatchObject(FORBIDDEN);
  });
});

describe('a gateway that cannot fetch its JWKS', () => {
  it('tells a client to try again later (1013, UNAVAILABLE) rather than calling its token bad, as REST answers 503', async () => {
    // Nothing listens on port 1: every fetch of the key set fails.
    await using gw = await startGateway({ auth: { enabled: true, jwksUrl: 'http://127.0.0.1:1/jwks.json' } });
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ accounts: ['A'] }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey);

    const viaUrl = new WebSocket(`${gw.wsUrl}?token=${token}`);
    const urlClose = await new Promise<number>((resolve) => viaUrl.on('close', (code) => resolve(code)));
    expect(urlClose).toBe(1013);

    await using client = await TestClient.connect(gw.wsUrl);
    const reply = await client.request('auth', { token });
    expect(reply).toMatchObject({ type: 'error', error: { code: 'UNAVAILABLE' } });
    expect((await client.closed).code).toBe(1013);

    const rest = await http(gw.url, '/api/state/snapshot?account=A', { token });
    expect(rest.status).toBe(503);
  });
});
