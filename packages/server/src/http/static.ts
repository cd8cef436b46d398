import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * Serves the built dashboard at `/` when its folder exists; otherwise `/` explains
 * how to build it, so a bare gateway still answers a browser sensibly.
 */
export async function registerDashboard(app: FastifyInstance, dir: string | undefined): Promise<void> {
  if (dir && existsSync(join(dir, 'index.html'))) {
    // `dashboard_dir` may be relative (to the working directory); the static plugin wants an absolute root.
    await app.register(fastifyStatic, { root: resolve(dir), prefix: '/', index: 'index.html', cacheControl: true, maxAge: '1h' });
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
