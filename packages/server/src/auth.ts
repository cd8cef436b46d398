/**
 * Optional JWT authentication. Tokens are verified either with an HS256 shared
 * secret or against a remote JWKS; their claims become a Principal that the
 * gateway consults for reading streams, sending commands and publishing events.
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyOptions } from 'jose';
import { ErrorCode, isValidAccount, type StreamRef } from '@tradesync/protocol';
import type { GatewayConfig } from './config.js';

export interface Principal {
  subject: string | null;
  accounts: readonly string[] | '*';
  canTrade: boolean;
  canPublish: boolean;
  /** ms since epoch, from the `exp` claim; null when the token never expires. */
  expiresAt: number | null;
}

/** The principal of every connection when auth is disabled: full access. */
export const ANONYMOUS: Principal = Object.freeze({
  subject: null,
  accounts: '*',
  canTrade: true,
  canPublish: true,
  expiresAt: null,
});

export interface Authenticator {
  readonly required: boolean;
  verify(token: string): Promise<Principal>;
}

/**
 * `expired` and `invalid` mean the token is bad (reply 401); `unavailable` means the
 * JWKS could not be fetched, so the token may be fine and the caller can retry (503).
 */
export type AuthErrorReason = 'invalid' | 'expired' | 'unavailable';

export class AuthError extends Error {
  override name = 'AuthError';
  readonly reason: AuthErrorReason;
  constructor(message: string, reason: AuthErrorReason = 'invalid', options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** Small allowance for clock drift between the token issuer and this gateway. */
const CLOCK_TOLERANCE_S = 5;
/** Asymmetric algorithms only: a JWKS must never let a public key act as an HMAC secret. */
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

type KeyInput = Uint8Array | ReturnType<typeof createRemoteJWKSet>;

export function createAuthenticator(auth: GatewayConfig['auth']): Authenticator {
  if (!auth.enabled) {
    return { required: false, verify: () => Promise.resolve(ANONYMOUS) };
  }
  let key: KeyInput;
  let algorithms: string[];
  if (auth.secret !== undefined) {
    key = new TextEncoder().encode(auth.secret);
    algorithms = ['HS256'];
  } else if (auth.jwksUrl !== undefined) {
    // Fetched lazily and cached by jose, refetched when a token names an unknown `kid`.
    key = createRemoteJWKSet(new URL(auth.jwksUrl));
    algorithms = JWKS_ALGORITHMS;
  } else {
    // The config schema rejects this; failing here guards hand-built configs.
    throw new Error('auth is enabled but neither a secret nor a JWKS URL is configured');
  }
  const options: JWTVerifyOptions = {
    algorithms,
    clockTolerance: CLOCK_TOLERANCE_S,
    ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
    ...(auth.audience !== undefined ? { audience: auth.audience } : {}),
  };

  return {
    required: true,
    async verify(token: string): Promise<Principal> {
      if (typeof token !== 'string' || token.length === 0) throw new AuthError('missing token');
      let payload: JWTPayload;
      try {
        // Two call sites so TypeScript picks the matching jwtVerify overload.
        payload =
          key instanceof Uint8Array
            ? (await jwtVerify(token, key, options)).payload
            : (await jwtVerify(token, key, options)).payload;
      } catch (err) {
        throw toAuthError(err);
      }
      const principal = principalFromClaims(payload);
      // The clock tolerance forgives an issuer's clock for `nbf` and `iat`; `exp` is held
      // to this gateway's clock, which is the one that closes the connection (4101) at
      // `exp`: a token accepted now must not be cut off a moment later.
      if (principal.expiresAt !== null && principal.expiresAt <= Date.now()) throw new AuthError('token expired', 'expired');
      return principal;
    },
  };
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof joseErrors.JWTExpired) return new AuthError('token expired', 'expired', { cause: err });
  if (err instanceof joseErrors.JWKSTimeout) return new AuthError('timed out fetching the JWKS', 'unavailable', { cause: err });
  // A malformed key set, a non-200 response or unparsable JSON is the key server's
  // fault (jose throws a bare JOSEError only while fetching), not the token's.
  if (err instanceof joseErrors.JWKSInvalid || (err instanceof joseErrors.JOSEError && err.code === joseErrors.JOSEError.code)) {
    return new AuthError(`could not load the JWKS: ${err.message}`, 'unavailable', { cause: err });
  }
  if (err instanceof joseErrors.JOSEError) {
    // jose messages are safe to return (they name the failed check, not key material).
    return new AuthError(`invalid token: ${err.message}`, 'invalid', { cause: err });
  }
  // Anything else is a fetch/network failure while loading the JWKS, not a bad token.
  return new AuthError('could not load the JWKS to verify the token', 'unavailable', { cause: err });
}

function principalFromClaims(payload: JWTPayload): Principal {
  const { sub, accounts, trade, publish, exp } = payload;
  let acc: readonly string[] | '*';
  if (accounts === undefined || accounts === null) acc = []; // no claim: no account access
  else if (accounts === '*') acc = '*';
  else if (Array.isArray(accounts) && accounts.every((a): a is string => typeof a === 'string')) {
    acc = Object.freeze([...accounts]);
  } else {
    throw new AuthError('invalid token: "accounts" claim must be an array of account names or "*"');
  }
  return {
    subject: typeof sub === 'string' ? sub : null,
    accounts: acc,
    canTrade: flag(trade, 'trade'),
    canPublish: flag(publish, 'publish'),
    expiresAt: typeof exp === 'number' ? exp * 1000 : null,
  };
}

/** Missing permission claims mean "no"; a wrongly typed one is rejected rather than guessed at. */
function flag(value: unknown, name: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  throw new AuthError(`invalid token: "${name}" claim must be a boolean`);
}

export function canUseAccount(p: Principal, account: string): boolean {
  return p.accounts === '*' || p.accounts.includes(account);
}

/** An account a request may act on, or why not (INVALID_MESSAGE when malformed, FORBIDDEN when not granted). */
export type AccountResolution =
  | { readonly ok: true; readonly account: string }
  | { readonly ok: false; readonly code: typeof ErrorCode.INVALID_MESSAGE | typeof ErrorCode.FORBIDDEN; readonly message: string };

/** The account a request is about: the one named, the token's only one, or the default. */
export function resolveAccount(p: Principal, named: string | undefined, defaultAccount: string): AccountResolution {
  const accounts = p.accounts;
  const account = named ?? (accounts !== '*' && accounts.length === 1 ? accounts[0] : defaultAccount);
  if (account === undefined || !isValidAccount(account)) {
    return { ok: false, code: ErrorCode.INVALID_MESSAGE, message: `invalid account "${String(account)}"` };
  }
  if (!canUseAccount(p, account)) return { ok: false, code: ErrorCode.FORBIDDEN, message: `not allowed to use account ${account}` };
  return { ok: true, account };
}

/** Market data is public to any authenticated principal; account streams need the account. */
export function canReadStream(p: Principal, stream: StreamRef): boolean {
  if (stream.kind === 'market') return true;
  return canUseAccount(p, stream.account);
}
