import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import proxyAddr from 'proxy-addr';
import type { EventInput } from '@tradesync/protocol';
import { createAuthenticator } from './auth.js';
import { COMMAND_TIMEOUT_MS, type CommandHandler } from './commands.js';
import type { GatewayConfig } from './config.js';
import type { GatewayContext } from './context.js';
import type { Engine, StoredEvent } from './engines/engine.js';
import { createEngine } from './engines/index.js';
import { registerRoutes } from './http/routes.js';
import { OriginPolicy } from './http/origin.js';
import { registerGuards } from './http/guards.js';
import { registerOpenApi } from './http/openapi.js';
import { registerDashboard } from './http/static.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { validateEvents, type PublishProblem } from './publish.js';
import { Compactor } from './state/compaction.js';
import { defaultMigrations, type MigrationRegistry } from './state/migrations.js';
import { StreamStore } from './state/store.js';
import { Fanout } from './ws/fanout.js';
import { Positions } from './ws/positions.js';
import { WebSocketGateway } from './ws/gateway.js';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  readonly logger?: Logger;
  /** Defaults to the engine the configuration names. */
  readonly engine?: Engine;
  readonly migrations?: MigrationRegistry;
  readonly commands?: CommandHandler;
  /** How long a command may take before it fails with TIMEOUT; defaults to COMMAND_TIMEOUT_MS. */
  readonly commandTimeoutMs?: number;
}

/** Raised by `Gateway.publish` when an event is not valid for its stream. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
  constructor(readonly problems: readonly PublishProblem[]) {
    super(problems.map((p) => `event ${p.index}: ${p.message}`).join('; '));
  }
}

/**
 * One gateway node: HTTP and WebSocket on one port, over one engine.
 * `start()` rebuilds state from the engine before accepting anyone.
 */
export class Gateway {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly engine: Engine;
  readonly metrics = new Metrics();
  readonly store: StreamStore;
  readonly ctx: GatewayContext;
  readonly #http: FastifyInstance;
  readonly #ws: WebSocketGateway;
  readonly #compactor: Compactor;
  readonly #fanout: Fanout;
  readonly #startedAt = new Date();
  #started = false;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.log = options.logger ?? createLogger(this.config.logLevel);
    this.engine = options.engine ?? createEngine(this.config);
    const migrations = options.migrations ?? defaultMigrations();
    this.store = new StreamStore(this.engine, migrations, { memoryWindow: this.config.history.memoryWindow, metrics: this.metrics }, this.log);
    this.#fanout = new Fanout(this.metrics, this.log);
    const trust = proxyAddr.compile([...this.config.trustedProxies]);
    this.ctx = {
      config: this.config,
      engine: this.engine,
      store: this.store,
      fanout: this.#fanout,
      positions: new Positions(this.store, this.#fanout, this.config.positionIntervalMs, this.metrics),
      metrics: this.metrics,
      auth: createAuthenticator(this.config.auth),
      log: this.log,
      commands: options.commands,
      commandTimeoutMs: options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS,
      origins: new OriginPolicy(this.config.host, this.config.port, this.config.allowedOrigins),
      // Without trusted proxies the address is the socket's: proxy-addr would still parse
      // every X-Forwarded-For it is sent, only to ignore it.
      clientAddress: this.config.trustedProxies.length > 0 ? (req) => proxyAddr(req, trust) : (req) => req.socket.remoteAddress ?? '',
    };
    this.store.on('events', (applied) => this.#fanout.publish(applied));
    this.#compactor = new Compactor(this.store, this.engine, this.config.history, migrations, this.log, this.metrics);
    this.#ws = new WebSocketGateway(this.ctx);
    // Typed as Fastify's base logger, so the instance keeps Fastify's default generics.
    const fastifyLogger: FastifyBaseLogger = this.log;
    this.#http = Fastify({
      loggerInstance: fastifyLogger,
      bodyLimit: this.config.limits.maxBodyBytes,
      trustProxy: this.config.trustedProxies.length > 0 ? [...this.config.trustedProxies] : false,
      // One line per request is noise at info (the dashboard polls, Prometheus scrapes):
      // requests are logged at debug, below.
      logController: new LogController({ disableRequestLogging: true }),
    });
    // Only at debug: below it, a hook on every response was work on every request (and every publish) for nothing.
    if (this.log.isLevelEnabled('debug')) {
      this.#http.addHook('onResponse', (req, reply, done) => {
        req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
        done();
      });
    }
    this.#http.server.on('upgrade', (req, socket, head) => {
      // A throw in an 'upgrade' listener would take the whole process down: one bad
      // upgrade costs its own socket only.
      try {
        this.#ws.handleUpgrade(req, socket, head);
      } catch (err) {
        this.log.error({ err, url: req.url }, 'upgrade failed');
        socket.destroy();
      }
    });
  }

  /** Opens the engine, rebuilds state, then listens. Resolves to the base HTTP URL. */
  async start(): Promise<string> {
    await this.engine.open();
    try {
      await this.store.load();
    } catch (err) {
      // Nothing is listening yet: release the engine so the caller can retry or exit.
      this.store.close();
      await this.engine.close();
      throw err;
    }
    this.#compactor.start();
    this.#ws.start();
    this.ctx.positions.start();
    await registerGuards(this.#http, this.ctx);
    // Before the routes: @fastify/swagger builds /openapi.json from the routes it sees registered.
    await registerOpenApi(this.#http);
    registerRoutes(this.#http, this.ctx, { ws: this.#ws, startedAt: this.#startedAt, publish: (events) => this.#append(events) });
    await registerDashboard(this.#http, this.config.dashboardDir);
    // A deep accept queue: a thousand clients reconnecting at once (after a network
    // blip) would overflow Node's default of 511 and wait for the kernel's 1 s retry.
    await this.#http.listen({ host: this.config.host, port: this.config.port, backlog: 2048 });
    this.#started = true;
    // The gateway's own origins name the port it really got (a configured 0 picks one).
    this.ctx.origins = new OriginPolicy(this.config.host, this.port, this.config.allowedOrigins);
    if (this.config.allowedOrigins.includes('*')) {
      this.log.warn('allowed_origins contains "*": any web page may open the WebSocket and call the API; only tokens protect the desk');
    }
    this.log.info({ url: this.url, engine: this.engine.kind, streams: [...this.store.entries()].length }, 'gateway listening');
    return this.url;
  }

  get port(): number {
    return (this.#http.server.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host;
    return `http://${host}:${this.port}`;
  }

  get wsUrl(): string {
    return `${this.url.replace(/^http/, 'ws')}/ws`;
  }

  get http(): FastifyInstance {
    return this.#http;
  }

  get connections(): WebSocketGateway['connections'] {
    return this.#ws.connections;
  }

  setCommandHandler(handler: CommandHandler | undefined): void {
    this.ctx.commands = handler;
  }

  /**
   * Validates and appends events, as `POST /api/v1/events` does: for producers in the
   * same process (the simulator). Throws PublishError when any event is invalid.
   */
  async publish(inputs: readonly unknown[]): Promise<readonly StoredEvent[]> {
    const { events, problems } = validateEvents(inputs);
    if (problems.length > 0) throw new PublishError(problems);
    return this.#append(events);
  }

  /** Runs one compaction pass now (snapshots and history trimming). */
  compact(now?: number): Promise<void> {
    return this.#compactor.run(now);
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.ctx.positions.stop();
    await this.#ws.stop();
    await this.#http.close();
    await this.#compactor.stop();
    try {
      await this.#compactor.snapshotAll();
    } catch (err) {
      this.log.warn({ err }, 'final snapshots failed; state will be rebuilt from the log');
    }
    this.store.close();
    await this.engine.close();
    this.log.info('gateway stopped');
  }

  async #append(events: readonly EventInput[]): Promise<readonly StoredEvent[]> {
    const stored = await this.engine.append(events);
    for (const e of stored) this.metrics.eventsAppended.inc({ kind: e.stream.slice(0, e.stream.indexOf(':')) });
    return stored;
  }
}
