/**
 * The floor: a bare `ws` server with no protocol. `POST /events` takes a JSON array
 * of `{stream, type, data}`; each event is serialized once and that string is sent
 * to every socket in the room named by its stream. A client joins one room with
 * `ws://127.0.0.1:PORT/?room=NAME`. No sequence numbers, offsets or resume.
 *
 *   node --conditions=@tradesync/source --import tsx bench/peers/raw-ws-server.ts PORT
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { readBody, answerHealth } from './http-body.js';

const port = Number(process.argv[2]);
const rooms = new Map<string, Set<WebSocket>>();

const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/events') {
    readBody(req).then((body) => {
      const events = JSON.parse(body) as { stream: string }[];
      for (const event of events) {
        const room = rooms.get(event.stream);
        if (!room) continue;
        const json = JSON.stringify(event);
        for (const ws of room) ws.send(json);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
    }, () => res.writeHead(400).end());
    return;
  }
  if (answerHealth(req, res)) return;
  res.writeHead(404).end();
});

const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const name = new URL(req.url ?? '/', 'http://localhost').searchParams.get('room') ?? 'default';
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Set()));
  room.add(ws);
  ws.on('error', () => {});
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0) rooms.delete(name);
  });
});

// Same keep-alive as Fastify (72 s), so the producer's connections are not reset under load.
http.keepAliveTimeout = 72_000;
http.listen(port, '127.0.0.1', () => console.log(`LISTENING ${port}`));
