import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CloseCode } from '@tradesync/protocol';
import { ANONYMOUS, AuthError, type Principal } from '../auth.js';
import type { GatewayContext } from '../context.js';
import type { StreamEntry } from '../state/store.js';
import { Connection } from './connection.js';
import { authenticatedFields, MessageHandlers } from './handlers.js';

/** The outcome of verifying a `?token=` before the upgrade completes. */
type TokenCheck = { readonly principal: Principal } | { readonly error: string };

/** How long a client may stay connected without authenticating when auth is required. */
const AUTH_GRACE_MS = 10_000;

/**
 * The `/ws` endpoint: upgrades (Fastify owns the port, `ws` runs with `noServer`),
 * the `connected` greeting, heartbeats both ways, and the registry of connections.
 */
export class WebSocketGateway {
  readonly connections = new Set<Connection>();
  readonly #wss: WebSocketServer;
  readonly #handlers: MessageHandlers;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: GatewayContext) {
    // The hard cap is above the advertised limit so an oversize frame can still be
    // answered with PAYLOAD_TOO_LARGE before the 1009 close; past the cap ws closes at once.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: ctx.config.limits.maxPayloadBytes * 4, perMessageDeflate: false });
    this.#handlers = new MessageHandlers(ctx);
    ctx.store.on('reset', (entry) => this.#onReset(entry));
  }

  start(): void {
    const interval = this.ctx.config.heartbeat.pingIntervalMs;
    this.#heartbeat = setInterval(() => this.#beat(), interval);
    this.#heartbeat.unref();
  }

  /** Handles an HTTP upgrade; anything but `/ws` is refused with a real HTTP status. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'Not Found');
    if (this.connections.size >= this.ctx.config.limits.maxConnections) return refuse(socket, 503, 'Service Unavailable');
    const token = url.searchParams.get('token');
    if (!token || !this.ctx.auth.required) {
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req, token, undefined));
      return;
    }
    // Fix: the URL token is verified BEFORE the upgrade completes. Verifying after it
    // (as before) left the socket open and reading with no 'message' listener while
    // jose worked, so a client that sent right after 'open' had its frames silently
    // dropped (and its sequence numbers started after them). Until the 101 is sent the
    // client cannot send frames, so nothing can be lost.
    const onError = (): void => void socket.destroy();
    socket.on('error', onError);
    void this.ctx.auth.verify(token).then(
      (principal): TokenCheck => ({ principal }),
      (err: unknown): TokenCheck => ({ error: err instanceof AuthError ? err.message : 'token verification failed' }),
    ).then((check) => {
      socket.off('error', onError);
      if (socket.destroyed) return;
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req, token, check));
    });
  }

  #accept(ws: WebSocket, req: IncomingMessage, token: string | null, check: TokenCheck | undefined): void {
    const { auth, config, metrics, log } = this.ctx;
    // Fix: an 'error' listener from the first moment, on every path. Without one, a
    // socket error (e.g. a frame over the hard payload cap sent by a client whose URL
    // token was just refused) was an uncaught exception that took the whole process down.
    let socketLog = log;
    ws.on('error', (err) => socketLog.warn({ err }, 'socket error'));
    let principal: Principal = ANONYMOUS;
    let authenticated = !auth.required;
    let tokenError: string | undefined;
    if (check && 'principal' in check) {
      principal = check.principal;
      authenticated = true;
    } else if (check) {
      tokenError = check.error;
    }
    const conn = new Connection(
      ws,
      principal,
      authenticated,
      {
        maxBufferedBytes: config.limits.maxBufferedBytes,
        messagesPerSecond: config.limits.messagesPerSecond,
        messageBurst: config.limits.messageBurst,
        remoteAddress: req.socket.remoteAddress,
      },
      metrics,
      log,
    );
    socketLog = conn.log;
    if (tokenError !== undefined) {
      conn.close(CloseCode.UNAUTHORIZED, 'unauthorized');
      return;
    }
    this.connections.add(conn);
    metrics.connections.inc();
    conn.log.info({ remote: req.socket.remoteAddress }, 'connected');

    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = byteLength(data);
      const text = isBinary ? '' : data.toString();
      void this.#handlers.handle(conn, isBinary ? '\u0000binary' : text, bytes);
    });
    ws.on('pong', () => conn.heard());
    ws.on('close', (code) => {
      this.connections.delete(conn);
      this.ctx.fanout.removeAll(conn);
      metrics.connections.dec();
      conn.log.info({ code }, 'disconnected');
    });

    conn.send('connected', {
      connection_id: conn.id,
      heartbeat_interval: config.heartbeat.pingIntervalMs,
      auth_required: auth.required,
      server_time: new Date().toISOString(),
    });
    if (authenticated && token) conn.send('authenticated', authenticatedFields(principal));
    if (!authenticated) {
      setTimeout(() => {
        if (!conn.authenticated) conn.close(CloseCode.UNAUTHORIZED, 'authentication timeout');
      }, AUTH_GRACE_MS).unref();
    }
  }

  /** Pings everyone; terminates peers silent for two intervals; closes expired tokens. */
  #beat(): void {
    const now = Date.now();
    for (const conn of this.connections) {
      // Counting unanswered pings, not comparing clocks: after an event-loop stall the
      // pongs that arrived meanwhile are read before the next beat, so a healthy peer
      // is never cut off for the server's own slowness.
      if (conn.unansweredPings >= 2) {
        conn.log.info('heartbeat timeout: two pings unanswered');
        conn.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
        continue;
      }
      const expires = conn.principal.expiresAt;
      if (expires !== null && expires <= now) {
        conn.close(CloseCode.TOKEN_EXPIRED, 'token expired');
        continue;
      }
      if (conn.socket.readyState === conn.socket.OPEN) {
        conn.unansweredPings++;
        conn.socket.ping();
      }
    }
  }


  /** A stream's history vanished: give its subscribers a fresh snapshot in place. */
  #onReset(entry: StreamEntry): void {
    for (const conn of this.connections) {
      const sub = conn.subscriptions.get(entry.name);
      if (!sub) continue;
      sub.delivered = entry.head;
      sub.epoch = entry.epoch;
      conn.send('subscribed', {
        stream: entry.name,
        epoch: entry.epoch,
        offset: entry.head,
        recovered: false,
        snapshot: { epoch: entry.epoch, offset: entry.head, state: entry.state },
      });
    }
  }

  /** Closes every connection with 1001 (clients resume elsewhere or after the restart). */
  async stop(): Promise<void> {
    clearInterval(this.#heartbeat);
    for (const conn of this.connections) conn.close(CloseCode.GOING_AWAY, 'server shutting down');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function byteLength(data: RawData): number {
  if (Buffer.isBuffer(data)) return data.length;
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}
