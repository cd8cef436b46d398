import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStream } from '@tradesync/protocol';
import type { StreamRef } from '@tradesync/protocol';
import { ANONYMOUS, AuthError, canReadStream, canUseAccount, createAuthenticator } from '../src/auth.js';
import type { Principal } from '../src/auth.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const key = (secret: string): Uint8Array => new TextEncoder().encode(secret);

function hs256(claims: JWTPayload, opts: { secret?: string; exp?: number | string; iss?: string; aud?: string } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(opts.exp ?? '1h');
  if (opts.iss !== undefined) jwt.setIssuer(opts.iss);
  if (opts.aud !== undefined) jwt.setAudience(opts.aud);
  return jwt.sign(key(opts.secret ?? SECRET));
}

async function authError(p: Promise<unknown>): Promise<AuthError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    return err as AuthError;
  }
  throw new Error('expected an AuthError');
}

function stream(name: string): StreamRef {
  const s = parseStream(name);
  if (s === undefined) throw new Error(`bad stream ${name}`);
  return s;
}

describe('auth disabled', () => {
  it('resolves ANONYMOUS for any token and is not required', async () => {
    const a = createAuthenticator({ enabled: false });
    expect(a.required).toBe(false);
    await expect(a.verify('')).resolves.toBe(ANONYMOUS);
    await expect(a.verify('garbage')).resolves.toBe(ANONYMOUS);
    expect(ANONYMOUS).toEqual({ subject: null, accounts: '*', canTrade: true, canPublish: true, expiresAt: null });
  });

  it('ignores a secret when explicitly disabled', async () => {
    const a = createAuthenticator({ enabled: false, secret: SECRET });
    await expect(a.verify('garbage')).resolves.toBe(ANONYMOUS);
  });
});

describe('HS256 secret', () => {
  const auth = createAuthenticator({ enabled: true, secret: SECRET });

  it('is required', () => expect(auth.required).toBe(true));

  it('maps sub, accounts, trade, publish and exp', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const p = await auth.verify(await hs256({ sub: 'alice', accounts: ['a1', 'a2'], trade: true, publish: false }, { exp }));
    expect(p).toEqual({ subject: 'alice', accounts: ['a1', 'a2'], canTrade: true, canPublish: false, expiresAt: exp * 1000 });
  });

  it('accepts accounts "*" and publish', async () => {
    const p = await auth.verify(await hs256({ sub: 'ops', accounts: '*', publish: true }));
    expect(p.accounts).toBe('*');
    expect(p.canPublish).toBe(true);
    expect(p.canTrade).toBe(false);
  });

  it('gives no accounts and no permissions when the claims are missing', async () => {
    const p = await auth.verify(await hs256({}));
    expect(p).toMatchObject({ subject: null, accounts: [], canTrade: false, canPublish: false });
  });

  it('rejects malformed permission claims', async () => {
    await authError(auth.verify(await hs256({ accounts: 'a1' })));
    await authError(auth.verify(await hs256({ accounts: [1, 2] })));
    await authError(auth.verify(await hs256({ trade: 'yes' })));
  });

  it('rejects an expired token', async () => {
    const err = await authError(auth.verify(await hs256({ sub: 'x' }, { exp: Math.floor(Date.now() / 1000) - 60 })));
    expect(err.reason).toBe('expired');
  });

  it('rejects a token signed with another secret', async () => {
    const err = await authError(auth.verify(await hs256({ sub: 'x' }, { secret: 'some-other-secret-of-decent-length!' })));
    expect(err.reason).toBe('invalid');
  });

  it('rejects garbage, empty and unsigned tokens', async () => {
    await authError(auth.verify('not.a.jwt'));
    await authError(auth.verify(''));
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ sub: 'x', accounts: '*' })).toString('base64url');
    await authError(auth.verify(`${header}.${body}.`));
  });

  it('checks issuer and audience when configured', async () => {
    const strict = createAuthenticator({ enabled: true, secret: SECRET, issuer: 'https://idp', audience: 'tradesync' });
    const ok = await strict.verify(await hs256({ sub: 'a' }, { iss: 'https://idp', aud: 'tradesync' }));
    expect(ok.subject).toBe('a');
    await authError(strict.verify(await hs256({ sub: 'a' }, { iss: 'https://evil', aud: 'tradesync' })));
    await authError(strict.verify(await hs256({ sub: 'a' }, { iss: 'https://idp', aud: 'other' })));
    await authError(strict.verify(await hs256({ sub: 'a' })));
  });
});

describe('JWKS', () => {
  let server: Server;
  let jwksUrl: string;
  let privateKey: CryptoKey;
  let fetches = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    server = createServer((req, res) => {
      fetches++;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  const rs256 = (claims: JWTPayload, kid = 'k1'): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt().setExpirationTime('5m').setIssuer('https://idp').sign(privateKey);

  it('verifies a token through a served JWKS', async () => {
    const auth = createAuthenticator({ enabled: true, jwksUrl, issuer: 'https://idp' });
    expect(auth.required).toBe(true);
    const p = await auth.verify(await rs256({ sub: 'bob', accounts: ['b1'], trade: true }));
    expect(p).toMatchObject({ subject: 'bob', accounts: ['b1'], canTrade: true, canPublish: false });
    expect(fetches).toBeGreaterThan(0);
  });

  it('rejects a token signed by a key not in the JWKS, and an HS256 token', async () => {
    const auth = createAuthenticator({ enabled: true, jwksUrl });
    const other = await generateKeyPair('RS256');
    const foreign = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('5m').sign(other.privateKey);
    await authError(auth.verify(foreign));
    await authError(auth.verify(await hs256({ sub: 'x' })));
  });

  it('reports an unreachable JWKS as unavailable, not invalid', async () => {
    const auth = createAuthenticator({ enabled: true, jwksUrl: jwksUrl.replace('/.well-known/jwks.json', '/missing') });
    const err = await authError(auth.verify(await rs256({ sub: 'x' })));
    expect(err.reason).toBe('unavailable');
  });
});

describe('access checks', () => {
  const alice: Principal = { subject: 'alice', accounts: ['a1'], canTrade: true, canPublish: false, expiresAt: null };
  const nobody: Principal = { subject: 'n', accounts: [], canTrade: false, canPublish: false, expiresAt: null };

  it('market streams are readable by any principal', () => {
    expect(canReadStream(nobody, stream('market:BTC-USD'))).toBe(true);
    expect(canReadStream(alice, stream('market:AAPL'))).toBe(true);
  });

  it('account streams need the account or "*"', () => {
    expect(canReadStream(alice, stream('portfolio:a1'))).toBe(true);
    expect(canReadStream(alice, stream('orders:a2'))).toBe(false);
    expect(canReadStream(nobody, stream('orders:a1'))).toBe(false);
    expect(canReadStream(ANONYMOUS, stream('signals:anything'))).toBe(true);
  });

  it('canUseAccount', () => {
    expect(canUseAccount(alice, 'a1')).toBe(true);
    expect(canUseAccount(alice, 'a2')).toBe(false);
    expect(canUseAccount(ANONYMOUS, 'a2')).toBe(true);
    expect(canUseAccount(nobody, 'a1')).toBe(false);
  });
});
