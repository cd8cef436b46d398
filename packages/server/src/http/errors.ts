/**
 * The REST error shape `{success: false, error: {code, message}}` and the one error
 * handler that turns everything thrown (schema validation, body limits, the rate
 * limiter, an unreachable engine) into it, with the status codes of the contract.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ErrorCode } from '@tradesync/protocol';
import { EngineUnavailableError } from '../engines/engine.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The message a route answers (400 INVALID_MESSAGE) when its querystring, params
     * or body fail the route's zod schema; the schema's own message when absent.
     */
    invalidInput?: string;
  }
}

/** Replies `status` with the contract's error shape (plus `extra` fields, e.g. a trimmed stream's positions). */
export function sendError(reply: FastifyReply, status: number, code: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(status).send({ success: false, error: { code, message }, ...extra });
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof EngineUnavailableError) return sendError(reply, 503, ErrorCode.UNAVAILABLE, 'the event log is unavailable');
    // A route's schema refused the input: answered as the route did by hand before it had a schema.
    if (hasZodFastifySchemaValidationErrors(err)) return sendError(reply, 400, ErrorCode.INVALID_MESSAGE, req.routeOptions.config.invalidInput ?? err.message);
    const status = err.statusCode;
    // A body over Fastify's bodyLimit is a 413: name it PAYLOAD_TOO_LARGE like the WebSocket side does.
    if (status === 413) return sendError(reply, status, ErrorCode.PAYLOAD_TOO_LARGE, err.message);
    if (status === 429) {
      req.log.warn({ remote: req.ip, url: req.url }, 'request rate limited');
      return sendError(reply, status, ErrorCode.RATE_LIMITED, err.message);
    }
    if (status && status >= 400 && status < 500) return sendError(reply, status, ErrorCode.INVALID_MESSAGE, err.message);
    req.log.error({ err }, 'request failed');
    return sendError(reply, 500, ErrorCode.INTERNAL, 'internal error');
  });
}
