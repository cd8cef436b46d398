import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { assertSafeBind, ConfigError, createLogger, Gateway, loadConfig } from '@tradesync/server';
import { DEFAULT_RATE, Simulator } from '@tradesync/simulator';

const HELP = `Usage: tradesync serve [options]

Runs the TradeSync gateway: REST and WebSocket (/ws) on one port.

Options:
  --host <addr>          address to bind (default 127.0.0.1)
  --port <n>             port (default 8000; 0 picks a free one)
  --config <file>        YAML configuration file
  --data-dir <dir>       where the embedded engine keeps its log (default ./data)
  --engine <name>        embedded (default) or redis
  --redis-url <url>      Redis URL for --engine redis
  --no-simulator         do not run the built-in trading simulator
  --rate <n>             simulator events per second over all streams (default 15;
                         "max" runs flat out, for load tests)
  --seed <n>             simulator seed: the same seed gives the same market (default 1)
  --insecure             allow a non-loopback bind without auth
  --auth-secret <s>      require JWTs signed with this HS256 secret
  --allowed-origins <l>  web pages (comma-separated origins, e.g.
                         https://desk.example.com) that may use the gateway besides
                         its own; a foreign page gets 403
  --ping-interval <s>    heartbeat interval in seconds (default 30)
  --durability <mode>    full (fsync every append, default) or normal
  --position-interval-ms <ms>
                         how often subscribers get each stream's position and
                         checksum (default 5000; 0 turns it off)
  --log-level <level>    fatal, error, warn, info (default), debug, trace, silent

Settings come from flags, then TRADESYNC_* environment variables, then the
config file, then defaults.`;

export async function serve(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        engine: { type: 'string' },
        'redis-url': { type: 'string' },
        'no-simulator': { type: 'boolean' },
        rate: { type: 'string' },
        seed: { type: 'string' },
        insecure: { type: 'boolean' },
        'auth-secret': { type: 'string' },
        'allowed-origins': { type: 'string' },
        'ping-interval': { type: 'string' },
        durability: { type: 'string' },
        'position-interval-ms': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`tradesync serve: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }

  let config;
  try {
    config = loadConfig({
      configFile: values.config,
      env: process.env,
      flags: {
        host: values.host,
        port: values.port,
        dataDir: values['data-dir'],
        engine: values.engine,
        redisUrl: values['redis-url'],
        simulator: values['no-simulator'] ? false : undefined,
        insecure: values.insecure,
        authSecret: values['auth-secret'],
        allowedOrigins: values['allowed-origins'],
        pingInterval: values['ping-interval'],
        durability: values.durability,
        positionIntervalMs: values['position-interval-ms'],
        logLevel: values['log-level'],
      },
    });
    assertSafeBind(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`tradesync serve: ${err.message}`);
      return 2;
    }
    throw err;
  }

  const rate = values.rate === undefined ? DEFAULT_RATE : values.rate === 'max' ? Infinity : Number(values.rate);
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!(rate > 0) || !Number.isInteger(seed)) {
    console.error('tradesync serve: --rate must be a positive number (or "max") and --seed an integer');
    return 2;
  }

  // A person at a terminal gets readable lines; a pipe or a file gets JSON.
  const log = createLogger(config.logLevel, undefined, { pretty: process.stdout.isTTY === true });
  const gateway = new Gateway({ config: { ...config, dashboardDir: config.dashboardDir ?? builtDashboard() }, logger: log });
  await gateway.start();
  console.log(`TradeSync gateway on ${gateway.url} (WebSocket ${gateway.wsUrl}, engine ${gateway.engine.kind})`);

  let simulator: Simulator | undefined;
  if (config.simulator) {
    // The simulator publishes through the same validated path as any producer and reads
    // the gateway's materialized state to reconcile its paper broker against it.
    simulator = new Simulator({
      sink: gateway,
      state: gateway.store,
      seed,
      rate,
      // A lost broker report now and then, so the desk shows reconciliation at work.
      loseReportEverySteps: 90,
      onError: (err) => log.error({ err }, 'simulator step failed'),
    });
    gateway.setCommandHandler(simulator.commands);
    await simulator.start();
    simulator.run();
    console.log(`Simulator running (seed ${seed}, ${Number.isFinite(rate) ? `${rate} events/s` : 'max rate'}; accounts ${[...simulator.desks.keys()].join(', ')})`);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      // The simulator stops first, so no step publishes into a closing gateway.
      (simulator ? simulator.stop() : Promise.resolve())
        .then(() => {
          gateway.setCommandHandler(undefined);
          return gateway.stop();
        })
        .then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** The dashboard package's build folder (`npm run build`), served at `/` unless configured otherwise. */
function builtDashboard(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@tradesync/dashboard/package.json')), 'dist');
  } catch {
    return undefined;
  }
}
