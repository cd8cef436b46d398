/**
 * Socket.IO 4 with `connectionStateRecovery` (its own resume: missed packets are
 * replayed on reconnect and `socket.recovered` is true). `POST /events` takes a JSON
 * array of `{stream, type, data}` and emits each event to the room named by its
 * stream; a client joins one room with the `room` query parameter. WebSocket
 * transport only, so it is compared on the same wire as the others.
 *
 *   node --conditions=@tradesync/source --import tsx bench/peers/socketio-server.ts PORT
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { readBody, answerHealth } from './http-body.js';

const port = Number(process.argv[2]);

const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/events') {
    readBody(req).then((body) => {
      const events = JSON.parse(body) as { stream: string }[];
      for (const event of events) io.to(event.stream).emit('event', event);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
    }, () => res.writeHead(400).end());
    return;
  }
  if (answerHealth(req, res)) return;
  // Socket.IO's own requests (/socket.io/) are answered by its listener.
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});

const io = new Server(http, {
  transports: ['websocket'],
  perMessageDeflate: false,
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000, skipMiddlewares: true },
});

io.on('connection', (socket) => {
  // A recovered socket gets its rooms back from the session; a new one joins its room.
  if (!socket.recovered) {
    const room = socket.handshake.query.room;
    void socket.join(typeof room === 'string' ? room : 'default');
  }
});

// Same keep-alive as Fastify (72 s), so the producer's connections are not reset under load.
http.keepAliveTimeout = 72_000;
http.listen(port, '127.0.0.1', () => console.log(`LISTENING ${port}`));
