/**
 * The HTTP half of the gateway, on the same port as `/ws`: route input is validated by
 * zod schemas through fastify-type-provider-zod (api.ts, ops.ts), who may call a route
 * is checked in its hooks first (principal.ts), and every error leaves in the
 * contract's shape (errors.ts).
 */
import type { FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { EventInput } from '@tradesync/protocol';
import type { GatewayContext } from '../context.js';
import type { StoredEvent } from '../engines/engine.js';
import type { WebSocketGateway } from '../ws/gateway.js';
import { registerApi } from './api.js';
import { registerErrorHandler } from './errors.js';
import { registerOps } from './ops.js';
import { createAccess } from './principal.js';

export interface RouteDeps {
  readonly ws: WebSocketGateway;
  readonly startedAt: Date;
  /** Appends already validated events (counted in metrics). */
  readonly publish: (events: readonly EventInput[]) => Promise<readonly StoredEvent[]>;
}

export function registerRoutes(app: FastifyInstance, ctx: GatewayContext, { ws, startedAt, publish }: RouteDeps): void {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);
  const access = createAccess(app, ctx);
  registerOps(app, ctx, { access, ws, startedAt });
  registerApi(app, ctx, { access, publish });
}
