/**
 * NATS as a peer: a `nats-server` (the Go broker many teams would pick instead) with its
 * WebSocket listener and JetStream, started here on free loopback ports, plus the same
 * `POST /events` the other peers take. Each event is published once on its stream's
 * subject (`market:BENCH` → `bench.market.BENCH`) over one TCP connection; clients
 * connect over WebSocket and subscribe to that subject. JetStream keeps every subject of
 * `bench.>` (file storage), as a team would to let clients catch up.
 *
 *   node --conditions=@tradesync/source --import tsx bench/peers/nats-peer.ts PORT
 *
 * Prints `LISTENING PORT ws=WS_PORT nats=NATS_PORT pid=NATS_SERVER_PID` once both are up: the bench
 * counts this process and the broker together as the system's CPU and memory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, natsSubject, sleep } from './common.js';
import { answerHealth, readBody } from './http-body.js';

const port = Number(process.argv[2]);
const natsPort = await freePort();
const wsPort = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'tradesync-bench-nats-'));
writeFileSync(
  join(dir, 'nats.conf'),
  [`listen: "127.0.0.1:${natsPort}"`, `websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }`, `jetstream { store_dir: "${join(dir, 'js')}" }`, 'max_payload: 1MB'].join('\n'),
);
// `nats-server` from PATH (Debian's package installs it).
const broker = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
broker.once('error', (err) => {
  console.error(`cannot start nats-server (${err.message}): install it (Debian: apt-get install nats-server) or leave NATS out with --systems`);
  process.exit(1);
});
const shutdown = () => {
  broker.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', shutdown);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));

let nc: NatsConnection | undefined;
for (let attempt = 0; !nc; attempt++) {
  try {
    nc = await connect({ servers: `127.0.0.1:${natsPort}` });
  } catch (err) {
    if (attempt > 100) throw err;
    await sleep(50);
  }
}
const conn = nc;
const jsm = await jetstreamManager(conn);
await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'] });

const encoder = new TextEncoder();
const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/events') {
    readBody(req).then(
      (body) => {
        const events = JSON.parse(body) as { stream: string }[];
        // Serialized once per event, as every other system here does.
        for (const event of events) conn.publish(natsSubject(event.stream), encoder.encode(JSON.stringify(event)));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
      },
      () => res.writeHead(400).end(),
    );
    return;
  }
  if (answerHealth(req, res)) return;
  res.writeHead(404).end();
});
http.keepAliveTimeout = 72_000;
http.listen(port, '127.0.0.1', () => console.log(`LISTENING ${port} ws=${wsPort} nats=${natsPort} pid=${broker.pid}`));
