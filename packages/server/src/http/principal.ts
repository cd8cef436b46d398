/**
 * Who a REST request acts for. Checked in route `preValidation` hooks, so a caller
 * without a valid token (401) or without the right (403) is answered before its
 * querystring or body is judged by the route's schema (400), as before schemas.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, preValidationAsyncHookHandler } from 'fastify';
import { ErrorCode } from '@tradesync/protocol';
import { AuthError, ANONYMOUS, resolveAccount, type Principal } from '../auth.js';
import type { GatewayContext } from '../context.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the `authenticate` hook of routes that need a caller. */
    principal: Principal | null;
  }
}

/** A string query parameter read before the querystring schema ran (the hooks run first). */
function rawQueryParam(req: FastifyRequest, name: string): string | undefined {
  const query: unknown = req.query;
  if (typeof query !== 'object' || query === null) return undefined;
  const value: unknown = Reflect.get(query, name);
  return typeof value === 'string' ? value : undefined;
}

export interface Access {
  /** Hook: the caller's principal from `Authorization: Bearer` or `?token=`; replies 401 (503 when keys are unreachable) otherwise. */
  readonly authenticate: preValidationAsyncHookHandler;
  /** Hook: 403 unless the caller may publish (run after `authenticate`). */
  readonly mayPublish: preValidationAsyncHookHandler;
  /** Hook: 403 unless the caller may trade (run after `authenticate`). */
  readonly mayTrade: preValidationAsyncHookHandler;
  /** The principal `authenticate` set. */
  readonly principalOf: (req: FastifyRequest) => Principal;
  /** The account named (the route passes its body's or `?account=`), resolved as over WebSocket; undefined after replying 400 or 403. */
  readonly accountOf: (req: FastifyRequest, reply: FastifyReply, named: string | undefined) => string | undefined;
}

export function createAccess(app: FastifyInstance, ctx: GatewayContext): Access {
  app.decorateRequest('principal', null);

  const principalOf = (req: FastifyRequest): Principal => {
    if (!req.principal) throw new Error(`route ${req.url} reads the principal without the authenticate hook`);
    return req.principal;
  };

  // A hook that replied returns the reply: Fastify then runs neither the later hooks nor the route.
  return {
    authenticate: async (req, reply) => {
      if (!ctx.auth.required) {
        req.principal = ANONYMOUS;
        return;
      }
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7) : rawQueryParam(req, 'token');
      if (!token) return sendError(reply, 401, ErrorCode.UNAUTHORIZED, 'a bearer token is required');
      try {
        req.principal = await ctx.auth.verify(token);
      } catch (err) {
        if (err instanceof AuthError && err.reason === 'unavailable') return sendError(reply, 503, ErrorCode.UNAVAILABLE, err.message);
        return sendError(reply, 401, ErrorCode.UNAUTHORIZED, err instanceof AuthError ? err.message : 'invalid token');
      }
    },
    mayPublish: async (req, reply) => {
      if (!principalOf(req).canPublish) return sendError(reply, 403, ErrorCode.FORBIDDEN, 'this token may not publish');
    },
    mayTrade: async (req, reply) => {
      if (!principalOf(req).canTrade) return sendError(reply, 403, ErrorCode.FORBIDDEN, 'this token may not trade');
    },
    principalOf,
    accountOf(req, reply, named) {
      const resolved = resolveAccount(principalOf(req), named, ctx.config.defaultAccount);
      if (resolved.ok) return resolved.account;
      sendError(reply, resolved.code === ErrorCode.FORBIDDEN ? 403 : 400, resolved.code, resolved.message);
      return undefined;
    },
  };
}
