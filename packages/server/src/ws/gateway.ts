import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CloseCode } from '@tradesync/protocol';
import { ANONYMOUS, AuthError, type Principal } from '../auth.js';
import type { GatewayContext } from '../context.js';
import { Connection } from './connection.js';
import { authenticatedFields, MessageHandlers } from './handlers.js';

/** The outcome of verifying a `?token=` before the upgrade completes. */
type TokenCheck = { readonly principal: Principal } | { readonly error: string; readonly unavailable: boolean };

/** How long a client may stay connected without authenticating when auth is required. */
const AUTH_GRACE_MS = 10_000;

/**
 * Heartbeat timing, in heartbeat intervals (I). The sweep runs every I/8; a connection
 * is pinged when its last ping is ≥ 3/4 I old (so pings are at most 7/8 I apart), and
 * dropped once nothing was heard from it for 3/2 I. The close handshake then gets I/8
 * before the socket is destroyed, so a peer that vanished (no FIN: a pulled cable, a
 * suspended laptop) is gone within 7/4 I of its last sign of life — inside the two
 * intervals documented, with a quarter interval to spare for a late timer.
 */
const SWEEPS_PER_INTERVAL = 8;
const PING_AFTER = 0.75;
const SILENT_LIMIT = 1.5;
/** Refused upgrades are logged once per reason and address per window, with a count of the rest: a loop of refusals must not flood the log. */
const REFUSAL_LOG_WINDOW_MS = 10_000;
const REFUSAL_LOG_KEYS = 10_000;

/**
 * The `/ws` endpoint: upgrades (Fastify owns the port, `ws` runs with `noServer`),
 * the `connected` greeting, heartbeats both ways, and the registry of connections.
 */
export class WebSocketGateway {
  readonly connections = new Set<Connection>();
  readonly #wss: WebSocketServer;
  readonly #handlers: MessageHandlers;
  /** Open (and upgrading) sockets per client address, for `limits.max_connections_per_ip`. */
  readonly #perAddress = new Map<string, number>();
  #heartbeat: NodeJS.Timeout | undefined;
  #lastSweep = 0;
  readonly #refusalsLogged = new Map<string, { readonly until: number; suppressed: number }>();

  constructor(private readonly ctx: GatewayContext) {
    // The hard cap is above the advertised limit so an oversize frame can still be
    // answered with PAYLOAD_TOO_LARGE before the 1009 close; past the cap ws closes at once.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: ctx.config.limits.maxPayloadBytes * 4, perMessageDeflate: false });
    this.#handlers = new MessageHandlers(ctx);
    // A stream's history vanished: its subscribers get the new state in place (or 4009, see Fanout.reset).
    ctx.store.on('reset', (entry) => ctx.fanout.reset(entry, (session) => ctx.positions.checksumOf(entry, session)));
  }

  start(): void {
    const sweepMs = Math.max(1, Math.round(this.ctx.config.heartbeat.pingIntervalMs / SWEEPS_PER_INTERVAL));
    this.#lastSweep = performance.now();
    this.#heartbeat = setInterval(() => this.#sweep(sweepMs), sweepMs);
    this.#heartbeat.unref();
  }

  /** Open and upgrading sockets from one client address. */
  connectionsFrom(address: string): number {
    return this.#perAddress.get(address) ?? 0;
  }

  /**
   * Handles an HTTP upgrade. Everything refused is refused here, with a real HTTP status
   * and a log line, before a WebSocket exists: a wrong path (404), a page of a foreign
   * origin or a foreign Host (403), too many sockets from one address (429) or on the
   * node (503).
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { config, origins } = this.ctx;
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'Not Found');
    const address = this.ctx.clientAddress(req);
    const origin = req.headers.origin;
    if (!origins.allows(origin) || !origins.allowsHost(req.headers.host)) {
      const reason = origins.allows(origin) ? 'host' : 'origin';
      this.#refused(reason, address, { origin, host: req.headers.host }, `refused a WebSocket upgrade: ${reason === 'origin' ? 'foreign origin' : 'unknown host'}`);
      return refuse(socket, 403, 'Forbidden');
    }
    if (this.connections.size >= config.limits.maxConnections) {
      this.#refused('connections', address, { limit: config.limits.maxConnections }, 'refused a WebSocket upgrade: the node is at limits.max_connections');
      return refuse(socket, 503, 'Service Unavailable');
    }
    const held = this.connectionsFrom(address);
    if (held >= config.limits.maxConnectionsPerIp) {
      this.#refused('connections_per_ip', address, { limit: config.limits.maxConnectionsPerIp }, 'refused a WebSocket upgrade: too many connections from this address');
      return refuse(socket, 429, 'Too Many Requests');
    }
    // Counted from now until the TCP socket closes, whatever happens in between (a failed
    // handshake, a refused token, a normal close), so the count can neither leak nor be
    // outrun by upgrades still verifying their tokens.
    this.#perAddress.set(address, held + 1);
    socket.once('close', () => {
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, left);
    });
    const token = url.searchParams.get('token');
    if (!token || !this.ctx.auth.required) {
      this.#upgrade(req, socket, head, (ws) => this.#accept(ws, req, address, token, undefined));
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
      (err: unknown): TokenCheck => ({
        error: err instanceof AuthError ? err.message : 'token verification failed',
        unavailable: err instanceof AuthError && err.reason === 'unavailable',
      }),
    ).then((check) => {
      socket.off('error', onError);
      if (socket.destroyed) return;
      this.#upgrade(req, socket, head, (ws) => this.#accept(ws, req, address, token, check));
    });
  }

  /**
   * Completes the handshake with the socket corked: `ws` writes the 101 and then calls
   * `accepted` in the same turn, which sends `connected`, so both leave in one write
   * (one write less per connection in a reconnect storm, and the client reads them
   * together).
   */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, accepted: (ws: WebSocket) => void): void {
    socket.cork();
    try {
      this.#wss.handleUpgrade(req, socket, head, accepted);
    } finally {
      socket.uncork();
    }
  }

  /** Counts a refused upgrade and logs it (see REFUSAL_LOG_WINDOW_MS). */
  #refused(reason: string, address: string, fields: Record<string, unknown>, message: string): void {
    this.ctx.metrics.requestsRefused.inc({ reason });
    const key = `${reason} ${address}`;
    const now = performance.now();
    const seen = this.#refusalsLogged.get(key);
    if (seen && seen.until > now) {
      seen.suppressed++;
      return;
    }
    if (this.#refusalsLogged.size >= REFUSAL_LOG_KEYS) this.#refusalsLogged.clear();
    this.#refusalsLogged.set(key, { until: now + REFUSAL_LOG_WINDOW_MS, suppressed: 0 });
    this.ctx.log.warn({ ...fields, remote: address, reason, ...(seen?.suppressed ? { not_logged_before: seen.suppressed } : {}) }, message);
  }

  #accept(ws: WebSocket, req: IncomingMessage, address: string, token: string | null, check: TokenCheck | undefined): void {
    const { auth, config, metrics, log } = this.ctx;
    // Fix: an 'error' listener from the first moment, on every path. Without one, a
    // socket error (e.g. a frame over the hard payload cap sent by a client whose URL
    // token was just refused) was an uncaught exception that took the whole process down.
    let socketLog = log;
    ws.on('error', (err) => socketLog.warn({ err }, 'socket error'));
    let principal: Principal = ANONYMOUS;
    let authenticated = !auth.required;
    let tokenError: string | undefined;
    let keysUnavailable = false;
    if (check && 'principal' in check) {
      principal = check.principal;
      authenticated = true;
    } else if (check) {
      tokenError = check.error;
      keysUnavailable = check.unavailable;
    }
    const conn = new Connection(
      ws,
      principal,
      authenticated,
      {
        maxBufferedBytes: config.limits.maxBufferedBytes,
        messagesPerSecond: config.limits.messagesPerSecond,
        messageBurst: config.limits.messageBurst,
        remoteAddress: address,
        positionOf: this.ctx.positions.positionOf,
      },
      metrics,
      log,
    );
    socketLog = conn.log;
    if (tokenError !== undefined) {
      // The key server being down says nothing about the token: try again later, same token.
      if (keysUnavailable) {
        conn.log.warn({ reason: tokenError }, 'could not verify the URL token: the JWKS is unavailable');
        conn.close(CloseCode.TRY_AGAIN_LATER, 'cannot verify tokens right now');
      } else {
        conn.log.info({ reason: tokenError }, 'refused the URL token');
        conn.close(CloseCode.UNAUTHORIZED, 'unauthorized');
      }
      return;
    }
    this.connections.add(conn);
    metrics.connections.inc();
    conn.log.info({ remote: conn.remoteAddress, origin: req.headers.origin }, 'connected');

    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = byteLength(data);
      const text = isBinary ? '' : textOf(data);
      void this.#handlers.handle(conn, isBinary ? '\u0000binary' : text, bytes);
    });
    ws.on('pong', () => conn.heard());
    ws.on('close', (code) => {
      conn.dispose();
      this.connections.delete(conn);
      this.ctx.fanout.removeAll(conn);
      metrics.connections.dec();
      conn.log.info({ code }, 'disconnected');
    });

    conn.send('connected', {
      connection_id: conn.id,
      heartbeat_interval: config.heartbeat.pingIntervalMs,
      position_interval_ms: config.positionIntervalMs,
      auth_required: auth.required,
      server_time: new Date().toISOString(),
    });
    if (authenticated && token) conn.send('authenticated', authenticatedFields(principal));
    if (!authenticated) {
      setTimeout(() => {
          if (!conn.authenticated && !conn.closed) {
          conn.log.info('authentication timeout: no valid auth message within 10 s');
          conn.close(CloseCode.UNAUTHORIZED, 'authentication timeout');
        }
      }, AUTH_GRACE_MS).unref();
    }
  }

  /**
   * Pings peers due a ping and drops the silent ones (see SILENT_LIMIT). Token expiry has
   * its own timer per connection (Connection.setPrincipal).
   */
  #sweep(sweepMs: number): void {
    const now = performance.now();
    // After an event-loop stall the timers run before the pongs that arrived meanwhile
    // are read: judge nobody this round, so a healthy peer is never cut off for the
    // server's own slowness. The next sweep (after the poll phase) sees the pongs.
    const stalled = now - this.#lastSweep > 2 * sweepMs;
    this.#lastSweep = now;
    const interval = this.ctx.config.heartbeat.pingIntervalMs;
    for (const conn of this.connections) {
      // A connection already closing is gone once its handshake or grace ends.
      if (conn.closed) continue;
      if (!stalled && conn.silentFor(now) >= SILENT_LIMIT * interval) {
        this.ctx.metrics.heartbeatCloses.inc();
        conn.log.info({ silent_ms: Math.round(conn.silentFor(now)) }, 'heartbeat timeout: nothing heard from the peer');
        conn.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', Math.min(2000, Math.max(1, Math.round(interval / SWEEPS_PER_INTERVAL))));
        continue;
      }
      conn.pingIfDue(now, PING_AFTER * interval);
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

/** A text frame's payload: ws hands it over as a Buffer (or, fragmented, Buffers; ArrayBuffer with another binaryType). */
function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString();
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  return Buffer.from(data).toString();
}

function byteLength(data: RawData): number {
  if (Buffer.isBuffer(data)) return data.length;
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}
