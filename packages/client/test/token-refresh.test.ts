/**
 * The SDK against a real gateway whose tokens are short-lived: the server closes the
 * socket with 4101 when the token runs out, and the client must come back with a
 * fresh token from its token function and resume where it stood (recovered, no
 * snapshot), its replica exactly the server's state, every offset applied once.
 */
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { TradeSyncClient, type ClientOptions, type ClientStatus, type LiveEvent, type Logger, type SyncedInfo } from '../src/index.js';
import { http, order, publish, startGateway } from '@tradesync/testing';

const SECRET = 'token-refresh-hs256-secret-long-enough';
const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const clients: TradeSyncClient[] = [];

function makeClient(options: ClientOptions): TradeSyncClient {
  const client = new TradeSyncClient({ WebSocket: WebSocket as never, logger: quiet, ...options });
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

const key = new TextEncoder().encode(SECRET);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A token for `accounts` valid for at least `validMs` (exp has whole-second precision). */
function token(claims: Record<string, unknown>, validMs: number): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.ceil((Date.now() + validMs) / 1000))
    .sign(key);
}

const expOf = (jwt: string): number => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;

/** A token function that hands out a fresh ~1.5 s token on every call, and remembers them. */
function shortLivedTokens(account: string) {
  const issued: string[] = [];
  const fn = async (): Promise<string> => {
    const jwt = await token({ sub: 'desk', accounts: [account] }, 1500);
    issued.push(jwt);
    return jwt;
  };
  return { fn, issued };
}

/** Every close the client went through, in order. */
function closesOf(client: TradeSyncClient, onClose?: (close: NonNullable<ClientStatus['lastClose']>) => void) {
  const closes: Array<{ code: number; reason: string }> = [];
  const connectionIds: string[] = [];
  client.on('status', (status, previous) => {
    if (status.lastClose && status.lastClose !== previous.lastClose) {
      closes.push(status.lastClose);
      onClose?.(status.lastClose);
    }
    if (status.connectionId && status.connectionId !== previous.connectionId) connectionIds.push(status.connectionId);
  });
  return { closes, connectionIds };
}

describe('the client with short-lived tokens', () => {
  it('reconnects after the 4101 close with a fresh token and resumes with since (recovered, no snapshot), equal to the server', async () => {
    await using gw = await startGateway({ auth: { enabled: true, secret: SECRET } });
    const admin = await token({ sub: 'ops', accounts: '*', publish: true }, 3_600_000);
    const stream = 'orders:acme';
    const tokens = shortLivedTokens('acme');
    // A backoff long enough that events published on the close land while the client is away.
    const client = makeClient({ url: gw.wsUrl, token: tokens.fn, backoff: { delaysMs: [500], jitter: 0 } });

    let whileAway: Promise<unknown> | undefined;
    const { closes, connectionIds } = closesOf(client, (close) => {
      if (close.code === 4101 && whileAway === undefined) whileAway = publish(gw.url, [order('acme'), order('acme'), order('acme')], admin);
    });
    const applied: number[] = [];
    const synced: SyncedInfo[] = [];
    const subscribeReplies: Array<Record<string, unknown>> = [];
    client.on('message', (m) => {
      if (m.type === 'subscribed' && m.stream === stream) subscribeReplies.push(m);
    });
    const handle = client.subscribe(stream, { onEvent: (e: LiveEvent) => applied.push(e.offset), onSynced: (s) => synced.push(s) });

    await vi.waitFor(() => expect(synced).toHaveLength(1));
    expect(synced[0]).toMatchObject({ recovered: false, offset: 0 });
    expect((await publish(gw.url, [order('acme'), order('acme')], admin)).status).toBe(200);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(2));
    const firstToken = tokens.issued[0]!;

    // The server ends the session when the first token runs out…
    await vi.waitFor(() => expect(closes.map((c) => c.code)).toContain(4101), { timeout: 5000 });
    expect(closes[0]).toMatchObject({ code: 4101 });
    // …and the client comes back on a new connection with a fresh token and resumes.
    await vi.waitFor(() => expect(synced).toHaveLength(2), { timeout: 5000 });
    await whileAway;
    expect(tokens.issued.length).toBeGreaterThanOrEqual(2);
    expect(tokens.issued[1]).not.toBe(firstToken);
    expect(expOf(tokens.issued[1]!)).toBeGreaterThan(Date.now() / 1000);
    expect(connectionIds.length).toBeGreaterThanOrEqual(2);
    expect(synced[1]).toMatchObject({ recovered: true, replayed: 3, offset: 5 });
    expect(synced[1]!.snapshotOffset).toBeUndefined();
    // The resume asked with `since` and the server answered with the missed events, no snapshot.
    const resumed = subscribeReplies[1]!;
    expect(resumed).toMatchObject({ recovered: true });
    expect(resumed.snapshot).toBeUndefined();
    expect((resumed.events as LiveEvent[]).map((e) => e.offset)).toEqual([3, 4, 5]);

    // Live again after the resume.
    expect((await publish(gw.url, [order('acme'), order('acme', { order_id: 'ord-closing', status: 'open' })], admin)).status).toBe(200);
    expect((await publish(gw.url, [{ stream, type: 'order:closed', data: { order_id: 'ord-closing', status: 'filled' } }], admin)).status).toBe(200);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(8));

    expect(applied).toEqual(range(1, 8));
    expect(closes.every((c) => c.code === 4101)).toBe(true);
    const server = await http(gw.url, `/api/state/snapshot?account=acme&streams=${stream}`, { token: admin });
    const snapshot = (server.body.snapshots as Record<string, { epoch: string; offset: number; state: unknown }>)[stream]!;
    expect(snapshot.offset).toBe(8);
    expect(handle.position).toEqual({ epoch: snapshot.epoch, offset: 8 });
    expect(handle.state).toEqual(snapshot.state);
    expect(handle.state).toEqual(gw.gateway.store.get(stream)!.state);
  });

  it('stays exact through two expiries in a row, asking the token function for a fresh token each time', async () => {
    await using gw = await startGateway({ auth: { enabled: true, secret: SECRET } });
    const admin = await token({ sub: 'ops', accounts: '*', publish: true }, 3_600_000);
    const stream = 'orders:acme';
    const tokens = shortLivedTokens('acme');
    const client = makeClient({ url: gw.wsUrl, token: tokens.fn, backoff: { delaysMs: [50], jitter: 0 } });
    const { closes } = closesOf(client);
    const applied: number[] = [];
    const synced: SyncedInfo[] = [];
    const handle = client.subscribe(stream, { onEvent: (e: LiveEvent) => applied.push(e.offset), onSynced: (s) => synced.push(s) });
    await vi.waitFor(() => expect(synced).toHaveLength(1));

    let published = 0;
    for (let expiry = 1; expiry <= 2; expiry++) {
      await publish(gw.url, [order('acme')], admin);
      published++;
      await vi.waitFor(() => expect(closes.filter((c) => c.code === 4101)).toHaveLength(expiry), { timeout: 5000 });
      await publish(gw.url, [order('acme')], admin);
      published++;
      await vi.waitFor(() => expect(synced).toHaveLength(expiry + 1), { timeout: 5000 });
      await vi.waitFor(() => expect(handle.position?.offset).toBe(published));
    }

    expect(tokens.issued.length).toBeGreaterThanOrEqual(3);
    expect(new Set(tokens.issued).size).toBe(tokens.issued.length);
    expect(closes.every((c) => c.code === 4101)).toBe(true);
    expect(synced.slice(1).every((s) => s.recovered)).toBe(true);
    expect(applied).toEqual(range(1, published));
    expect(handle.state).toEqual(gw.gateway.store.get(stream)!.state);
  });
});
