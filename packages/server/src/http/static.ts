import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * Serves the built dashboard at `/` when its folder exists; otherwise `/` explains
 * how to build it, so a bare gateway still answers a browser sensibly.
 */
export async function registerDashboard(app: FastifyInstance, dir: string | undefined): Promise<void> {
  if (dir && existsSync(join(dir, 'index.html'))) {
    await app.register(fastifyStatic, { root: dir, prefix: '/', index: 'index.html', cacheControl: true, maxAge: '1h' });
    return;
  }
  app.get('/', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send(
        '<!doctype html><title>TradeSync</title><h1>TradeSync gateway</h1>' +
          '<p>The dashboard is not built. Run <code>npm start</code> from the repository, or see ' +
          '<a href="/health">/health</a> and <a href="/metrics">/metrics</a>. WebSocket: <code>/ws</code>.</p>',
      ),
  );
}
