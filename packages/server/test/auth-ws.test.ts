import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { http, order, publish, startGateway, TestClient, tick, type Message, type TestGateway } from '@tradesync/testing';

const SECRET = 'an-hs256-secret-for-tests-that-is-long-enough';

function sign(claims: JWTPayload, opts: { secret?: string; exp?: number | string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '1h')
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** Resolves with the close code, and every message received before the close. */
function closeOf(socket: WebSocket): Promise<{ code: number; messages: Message[] }> {
  const messages: Message[] = [];
  socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString()) as Message));
  return new Promise((resolve) => socket.on('close', (code) => resolve({ code, messages })));
}

describe('WebSocket authentication', () => {
  let gw: TestGateway;
  let alice: string;
  let aliceTrader: string;
  let admin: string;
  beforeAll(async () => {
    gw = await startGateway({ auth: { enabled: true, secret: SECRET } });
    alice = await sign({ sub: 'alice', accounts: ['alice'] });
    aliceTrader = await sign({ sub: 'alice', accounts: ['alice'], trade: true, publish: true });
    admin = await sign({ sub: 'ops', accounts: '*', publish: true });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it('accepts a token in the URL: `connected` (auth_required) then `authenticated` with the token accounts', async () => {
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${alice}`);
    expect(client.messages[0]).toMatchObject({ type: 'connected', sequence_number: 0, auth_required: true });
    const auth = await client.next((m) => m.type === 'authenticated');
    expect(auth).toMatchObject({ sequence_number: 1, subject: 'alice', accounts: ['alice'], can_trade: false });
    expect((await client.request('subscribe', { stream: 'orders:alice' })).type).toBe('subscribed');
  });

  it('answers a message sent the moment the socket opens with a URL token, losing nothing while the token is checked', async () => {
    const socket = new WebSocket(`${gw.wsUrl}?token=${alice}`);
    const messages: Message[] = [];
    socket.on('message', (data) => messages.push(JSON.parse((data as Buffer).toString()) as Message));
    socket.on('open', () => {
      socket.send(JSON.stringify({ id: 'early-sub', type: 'subscribe', data: { stream: 'orders:alice' } }));
      socket.send(JSON.stringify({ id: 'early-ping', type: 'ping' }));
    });
    try {
      await expect.poll(() => messages.map((m) => m.type), { timeout: 3000 }).toEqual(['connected', 'authenticated', 'subscribed', 'pong']);
      expect(messages.map((m) => m.sequence_number)).toEqual([0, 1, 2, 3]);
    } finally {
      socket.close();
    }
  });

  it('closes with 4001 a connection whose URL token is invalid, expired or signed with another secret', async () => {
    const expired = await sign({ accounts: ['alice'] }, { exp: Math.floor(Date.now() / 1000) - 3600 });
    const foreign = await sign({ accounts: ['alice'] }, { secret: 'some-other-secret-that-is-long-enough-too' });
    for (const token of ['not-a-jwt', expired, foreign]) {
      const socket = new WebSocket(`${gw.wsUrl}?token=${token}`);
      const { code, messages } = await closeOf(socket);
      expect(code).toBe(4001);
      expect(messages.some((m) => m.type === 'authenticated')).toBe(false);
    }
  });

  it('survives a client that sends an oversize frame right after its invalid URL token is refused', async () => {
    const socket = new WebSocket(`${gw.wsUrl}?token=not-a-jwt`);
    socket.on('error', () => undefined);
    // Over the hard payload cap: the server-side socket errors while it waits for the closing handshake.
    socket.on('open', () => socket.send('x'.repeat(1024 * 1024)));
    const { code } = await closeOf(socket);
    expect([4001, 1006, 1009]).toContain(code);
    // The gateway process is still up and serving (an unhandled 'error' used to crash it).
    expect((await http(gw.url, '/health')).status).toBe(200);
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${alice}`);
    expect((await client.request('ping')).type).toBe('pong');
  });

  it('answers UNAUTHORIZED to everything but auth and ping until the client authenticates', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    expect(client.messages[0]).toMatchObject({ type: 'connected', auth_required: true });
    for (const [type, data] of [
      ['subscribe', { stream: 'market:BTC-USD' }],
      ['unsubscribe', { stream: 'market:BTC-USD' }],
      ['state_sync_request', {}],
      ['get_initial_state', {}],
      ['command', { action: 'cancel_order' }],
    ] as const) {
      const reply = await client.request(type, data);
      expect(reply, type).toMatchObject({ type: 'error', error: { code: 'UNAUTHORIZED' } });
    }
    expect((await client.request('ping')).type).toBe('pong');
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('authenticates with an `auth` message, then allows own and market streams and forbids another account', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    const auth = await client.request('auth', { token: alice });
    expect(auth).toMatchObject({ type: 'authenticated', subject: 'alice', accounts: ['alice'] });
    expect(await client.request('subscribe', { stream: 'orders:bob' })).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
    expect(await client.request('subscribe', { stream: 'portfolio:bob' })).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
    expect(await client.request('state_sync_request', { account: 'bob' })).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
    expect((await client.request('subscribe', { stream: 'orders:alice' })).type).toBe('subscribed');
    expect((await client.request('subscribe', { stream: 'market:BTC-USD' })).type).toBe('subscribed');
    // The token's only account is the default for account-less requests.
    expect(await client.request('state_sync_request')).toMatchObject({ type: 'state_sync_response', data: { account: 'alice' } });
    await publish(gw.url, [order('bob'), order('alice'), tick('BTC-USD', '1')], admin);
    await expect.poll(() => client.events().map((e) => e.stream)).toEqual(['orders:alice', 'market:BTC-USD']);
  });

  it('handles an auth message and a subscribe sent back to back in that order', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ id: 'a', type: 'auth', data: { token: alice } });
    client.send({ id: 's', type: 'subscribe', data: { stream: 'orders:alice' } });
    const sub = await client.next((m) => m.id === 's');
    expect(sub.type).toBe('subscribed');
    expect(client.messages.slice(1).map((m) => m.id)).toEqual(['a', 's']);
  });

  it('answers an auth message with a bad token with UNAUTHORIZED and closes with 4001', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ id: 'bad', type: 'auth', data: { token: 'nope' } });
    const error = await client.next((m) => m.id === 'bad');
    expect(error).toMatchObject({ type: 'error', error: { code: 'UNAUTHORIZED' } });
    expect((await client.closed).code).toBe(4001);
  });

  it('refuses a command from a token without `trade` and runs it for one with `trade`', async () => {
    await using reader = await TestClient.connect(`${gw.wsUrl}?token=${alice}`);
    const refused = await reader.request('command', { action: 'cancel_order', order_id: 'o1' });
    expect(refused).toMatchObject({ type: 'command_result', success: false, error: { code: 'FORBIDDEN' } });
    await using trader = await TestClient.connect(`${gw.wsUrl}?token=${aliceTrader}`);
    // Allowed to trade; this gateway has no command handler, so the action is unknown, not forbidden.
    const allowed = await trader.request('command', { action: 'cancel_order', order_id: 'o1' });
    expect(allowed).toMatchObject({ type: 'command_result', success: false, error: { code: 'UNKNOWN_COMMAND' } });
    const other = await trader.request('command', { action: 'cancel_order', account: 'bob' });
    expect(other).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } });
  });

  it('lets a token with accounts "*" read any account', async () => {
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${admin}`);
    expect((await client.request('subscribe', { stream: 'orders:bob' })).type).toBe('subscribed');
    expect((await client.request('subscribe', { stream: 'signals:carol' })).type).toBe('subscribed');
  });
});

describe('token expiry during a session', () => {
  it('closes the connection with 4101 once its token expires', async () => {
    await using gw = await startGateway({ auth: { enabled: true, secret: SECRET }, heartbeat: { pingIntervalMs: 250 } });
    // At least a whole second of validity (exp has whole-second precision), so it expires mid-session.
    const token = await sign({ accounts: ['alice'] }, { exp: Math.ceil(Date.now() / 1000) + 1 });
    await using client = await TestClient.connect(`${gw.wsUrl}?token=${token}`);
    expect((await client.closed).code).toBe(4101);
  });
});

describe('REST authentication', () => {
  let gw: TestGateway;
  let alice: string;
  let alicePublisher: string;
  let admin: string;
  beforeAll(async () => {
    gw = await startGateway({ auth: { enabled: true, secret: SECRET } });
    alice = await sign({ sub: 'alice', accounts: ['alice'], trade: true });
    alicePublisher = await sign({ sub: 'alice-engine', accounts: ['alice'], publish: true });
    admin = await sign({ sub: 'ops', accounts: '*', publish: true });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it('answers 401 without a token or with a bad one', async () => {
    for (const path of ['/api/state/snapshot', '/api/v1/signals', '/api/v1/streams/orders%3Aalice/events', '/api/admin/websocket/connections']) {
      const none = await http(gw.url, path);
      expect(none.status, path).toBe(401);
      expect(none.body).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      expect((await http(gw.url, path, { token: 'garbage' })).status, path).toBe(401);
    }
    expect((await publish(gw.url, [order('alice')])).status).toBe(401);
    expect((await http(gw.url, '/api/v1/commands', { body: { action: 'x' } })).status).toBe(401);
  });

  it('serves the token account and answers 403 for another one', async () => {
    expect((await http(gw.url, '/api/state/snapshot', { token: alice })).body).toMatchObject({ account: 'alice' });
    expect((await http(gw.url, '/api/state/snapshot?account=alice', { token: alice })).status).toBe(200);
    const other = await http(gw.url, '/api/state/snapshot?account=bob', { token: alice });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    expect((await http(gw.url, '/api/v1/signals?account=bob', { token: alice })).status).toBe(403);
    expect((await http(gw.url, '/api/v1/streams/orders%3Abob/events', { token: alice })).status).toBe(403);
    expect((await http(gw.url, '/api/v1/streams/market%3ABTC-USD/events', { token: alice })).status).toBe(200);
    expect((await http(gw.url, '/api/v1/commands', { token: alice, body: { action: 'cancel_order', account: 'bob' } })).status).toBe(403);
  });

  it('also accepts the token as ?token= on REST', async () => {
    expect((await http(gw.url, `/api/state/snapshot?token=${alice}`)).status).toBe(200);
  });

  it('lets only a token with the `publish` claim publish, and only to its own accounts and market streams', async () => {
    const noClaim = await publish(gw.url, [order('alice')], alice);
    expect(noClaim.status).toBe(403);
    expect(noClaim.body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const otherAccount = await publish(gw.url, [order('alice'), order('bob')], alicePublisher);
    expect(otherAccount.status).toBe(403);
    const before = await http(gw.url, '/api/v1/streams/orders%3Aalice/events', { token: admin });
    const ok = await publish(gw.url, [order('alice'), tick('BTC-USD', '1')], alicePublisher);
    expect(ok.status).toBe(200);
    const after = await http(gw.url, '/api/v1/streams/orders%3Aalice/events', { token: admin });
    // The refused request appended nothing; the accepted one appended exactly its order.
    expect((after.body.head as number) - (before.body.head as number)).toBe(1);
  });

  it('keeps the admin connection list for tokens with accounts "*"', async () => {
    expect((await http(gw.url, '/api/admin/websocket/connections', { token: alice })).status).toBe(403);
    expect((await http(gw.url, '/api/admin/websocket/connections', { token: admin })).status).toBe(200);
  });

  it('leaves /health open without a token', async () => {
    expect((await http(gw.url, '/health')).status).toBe(200);
  });
});
