import type { IncomingMessage, ServerResponse } from 'node:http';

/** The whole request body as a string. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

/** `GET /health` for the peers: answers once the server is up. */
export function answerHealth(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' || req.url !== '/health') return false;
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', cpu: process.cpuUsage() }));
  return true;
}
