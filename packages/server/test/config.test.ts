import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { assertSafeBind, ConfigError, DEFAULT_CONFIG, isLoopback, loadConfig } from '../src/config.js';
import type { GatewayConfig } from '../src/config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tradesync-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function yamlFile(text: string): string {
  const file = path.join(dir, `config-${++fileCounter}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Runs `fn`, expecting a ConfigError, and returns its message. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('match the documented values', () => {
    expect(loadConfig({})).toEqual(DEFAULT_CONFIG);
    expect(DEFAULT_CONFIG).toMatchObject({
      host: '127.0.0.1',
      port: 8000,
      dataDir: './data',
      engine: 'embedded',
      redisUrl: 'redis://127.0.0.1:6379',
      simulator: true,
      insecure: false,
      defaultAccount: 'demo',
      logLevel: 'info',
      durability: 'full',
      heartbeat: { pingIntervalMs: 30_000 },
      limits: {
        maxPayloadBytes: 65_536,
        messagesPerSecond: 50,
        messageBurst: 100,
        maxSubscriptions: 100,
        maxBufferedBytes: 8 * 1024 * 1024,
        maxConnections: 20_000,
      },
      history: {
        maxEvents: 10_000,
        maxAgeMs: 24 * 3600 * 1000,
        snapshotEvery: 1000,
        compactIntervalMs: 10_000,
        memoryWindow: 1000,
        maxRecoveryEvents: 10_000,
      },
      auth: { enabled: false },
    });
    expect(DEFAULT_CONFIG.dashboardDir).toBeUndefined();
    expect(DEFAULT_CONFIG.auth.secret).toBeUndefined();
  });

  it('is frozen and not shared with loaded configs', () => {
    expect(Object.isFrozen(DEFAULT_CONFIG.limits)).toBe(true);
    const c = loadConfig({});
    c.limits.maxConnections = 1;
    expect(DEFAULT_CONFIG.limits.maxConnections).toBe(20_000);
  });

  it('infers the documented types, with optional auth keys', () => {
    expectTypeOf<GatewayConfig['engine']>().toEqualTypeOf<'embedded' | 'redis'>();
    expectTypeOf<GatewayConfig['durability']>().toEqualTypeOf<'full' | 'normal'>();
    expectTypeOf<GatewayConfig['logLevel']>().toEqualTypeOf<'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'>();
    // A hand-built auth section without secret/jwksUrl must type-check.
    const auth: GatewayConfig['auth'] = { enabled: false };
    expect(auth.enabled).toBe(false);
    expectTypeOf<GatewayConfig['dashboardDir']>().toEqualTypeOf<string | undefined>();
  });
});

describe('file', () => {
  it('reads snake_case keys and converts seconds to ms', () => {
    const file = yamlFile(`
host: 0.0.0.0
port: 9001
data_dir: /var/lib/tradesync
engine: redis
redis_url: redis://cache:6379
simulator: false
default_account: acct-1
log_level: debug
durability: normal
dashboard_dir: ./dashboard
heartbeat:
  ping_interval: 0.2
limits:
  max_payload_bytes: 1024
  messages_per_second: 5
  message_burst: 10
  max_subscriptions: 3
  max_buffered_bytes: 4096
  max_connections: 7
history:
  max_events: 500
  max_age: 60
  snapshot_every: 50
  compact_interval: 1.5
  memory_window: 20
  max_recovery_events: 100
auth:
  secret: s3cret
  issuer: https://issuer.example
  audience: tradesync
`);
    const c = loadConfig({ configFile: file });
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 9001,
      dataDir: '/var/lib/tradesync',
      engine: 'redis',
      redisUrl: 'redis://cache:6379',
      simulator: false,
      defaultAccount: 'acct-1',
      logLevel: 'debug',
      durability: 'normal',
      dashboardDir: './dashboard',
      heartbeat: { pingIntervalMs: 200 },
      limits: { maxPayloadBytes: 1024, messagesPerSecond: 5, messageBurst: 10, maxSubscriptions: 3, maxBufferedBytes: 4096, maxConnections: 7 },
      history: { maxEvents: 500, maxAgeMs: 60_000, snapshotEvery: 50, compactIntervalMs: 1500, memoryWindow: 20, maxRecoveryEvents: 100 },
    });
    // A secret switches auth on without an explicit `enabled`.
    expect(c.auth).toEqual({ enabled: true, secret: 's3cret', issuer: 'https://issuer.example', audience: 'tradesync' });
  });

  it('keeps defaults for keys the file leaves out, including inside sections', () => {
    const c = loadConfig({ configFile: yamlFile('limits:\n  max_connections: 5\n') });
    expect(c.limits).toEqual({ ...DEFAULT_CONFIG.limits, maxConnections: 5 });
    expect(c.port).toBe(8000);
  });

  it('treats an empty file as no settings', () => {
    expect(loadConfig({ configFile: yamlFile('') })).toEqual(DEFAULT_CONFIG);
  });

  it('rejects unknown keys, naming the key and the file', () => {
    const file = yamlFile('prot: 8000\n');
    const msg = configError(() => loadConfig({ configFile: file }));
    expect(msg).toContain('prot');
    expect(msg).toContain(file);
    expect(configError(() => loadConfig({ configFile: yamlFile('limits:\n  max_conections: 5\n') }))).toContain('limits.max_conections');
  });

  it('rejects bad values, naming the key and the file', () => {
    const file = yamlFile('heartbeat:\n  ping_interval: -1\n');
    const msg = configError(() => loadConfig({ configFile: file }));
    expect(msg).toContain('heartbeat.ping_interval');
    expect(msg).toContain(file);
    expect(configError(() => loadConfig({ configFile: yamlFile('port: "eighty"\n') }))).toContain('port');
    expect(configError(() => loadConfig({ configFile: yamlFile('engine: postgres\n') }))).toContain('engine');
    expect(configError(() => loadConfig({ configFile: yamlFile('limits: 5\n') }))).toContain('limits');
  });

  it('reports a missing file, invalid YAML and a non-mapping document as ConfigError', () => {
    expect(configError(() => loadConfig({ configFile: path.join(dir, 'nope.yaml') }))).toContain('nope.yaml');
    expect(configError(() => loadConfig({ configFile: yamlFile('port: [1, 2\n') }))).toContain('YAML');
    expect(configError(() => loadConfig({ configFile: yamlFile('- a\n- b\n') }))).toContain('mapping');
  });

  it('is named by TRADESYNC_CONFIG when no configFile is given', () => {
    const file = yamlFile('port: 1234\n');
    expect(loadConfig({ env: { TRADESYNC_CONFIG: file } }).port).toBe(1234);
    const other = yamlFile('port: 4321\n');
    expect(loadConfig({ configFile: other, env: { TRADESYNC_CONFIG: file } }).port).toBe(4321);
  });
});

describe('environment', () => {
  it('maps TRADESYNC_ names with __ for nesting and coerces values', () => {
    const c = loadConfig({
      env: {
        TRADESYNC_PORT: '9100',
        TRADESYNC_DATA_DIR: '/tmp/x',
        TRADESYNC_SIMULATOR: '0',
        TRADESYNC_INSECURE: 'true',
        TRADESYNC_HEARTBEAT__PING_INTERVAL: '2.5',
        TRADESYNC_LIMITS__MAX_PAYLOAD_BYTES: '2048',
        TRADESYNC_HISTORY__MAX_AGE: '3600',
        TRADESYNC_AUTH__SECRET: 'envsecret',
        TRADESYNC_DASHBOARD_DIR: '/srv/dash',
        PATH: '/usr/bin', // unrelated variables are not ours to check
      },
    });
    expect(c).toMatchObject({
      port: 9100,
      dataDir: '/tmp/x',
      simulator: false,
      insecure: true,
      heartbeat: { pingIntervalMs: 2500 },
      limits: { maxPayloadBytes: 2048 },
      history: { maxAgeMs: 3_600_000 },
      auth: { enabled: true, secret: 'envsecret' },
      dashboardDir: '/srv/dash',
    });
  });

  it('rejects unknown TRADESYNC_ variables, naming them', () => {
    expect(configError(() => loadConfig({ env: { TRADESYNC_PROT: '1' } }))).toContain('TRADESYNC_PROT');
    expect(configError(() => loadConfig({ env: { TRADESYNC_LIMITS__MAX_PAYLOAD: '1' } }))).toContain('TRADESYNC_LIMITS__MAX_PAYLOAD');
    // A single underscore where "__" is needed is a typo worth catching too.
    expect(configError(() => loadConfig({ env: { TRADESYNC_AUTH_SECRET: 'x' } }))).toContain('TRADESYNC_AUTH_SECRET');
  });

  it('rejects bad values, naming the variable and key', () => {
    const bad = configError(() => loadConfig({ env: { TRADESYNC_PORT: 'abc' } }));
    expect(bad).toContain('TRADESYNC_PORT');
    expect(bad).toContain('port');
    expect(configError(() => loadConfig({ env: { TRADESYNC_SIMULATOR: 'yes' } }))).toContain('TRADESYNC_SIMULATOR');
    expect(configError(() => loadConfig({ env: { TRADESYNC_PORT: '70000' } }))).toContain('TRADESYNC_PORT');
    expect(configError(() => loadConfig({ env: { TRADESYNC_LOG_LEVEL: 'loud' } }))).toContain('TRADESYNC_LOG_LEVEL');
    expect(configError(() => loadConfig({ env: { TRADESYNC_LIMITS__MESSAGE_BURST: '1.5' } }))).toContain('limits.message_burst');
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ env: { TRADESYNC_PORT: '', TRADESYNC_AUTH__SECRET: '' } })).toEqual(DEFAULT_CONFIG);
  });
});

describe('precedence', () => {
  it('is flags > env > file > defaults, per key', () => {
    const file = yamlFile('host: 10.0.0.1\nport: 1111\ndata_dir: /file\nlog_level: warn\nheartbeat:\n  ping_interval: 10\n');
    const env = { TRADESYNC_PORT: '2222', TRADESYNC_DATA_DIR: '/env', TRADESYNC_HEARTBEAT__PING_INTERVAL: '20', TRADESYNC_INSECURE: '1' };
    const c = loadConfig({ configFile: file, env, flags: { port: 3333, pingInterval: 0.5 } });
    expect(c.port).toBe(3333); // flag over env and file
    expect(c.heartbeat.pingIntervalMs).toBe(500); // flag, in seconds
    expect(c.dataDir).toBe('/env'); // env over file
    expect(c.logLevel).toBe('warn'); // file over default
    expect(c.host).toBe('10.0.0.1');
    expect(c.insecure).toBe(true);
    expect(c.engine).toBe('embedded'); // default
  });

  it('maps every flag', () => {
    const c = loadConfig({
      flags: {
        host: '::1',
        port: 0,
        dataDir: '/flags',
        engine: 'redis',
        redisUrl: 'redis://r:1',
        simulator: false,
        insecure: true,
        logLevel: 'trace',
        authSecret: 'flagsecret',
        pingInterval: 1,
        durability: 'normal',
      },
    });
    expect(c).toMatchObject({
      host: '::1',
      port: 0,
      dataDir: '/flags',
      engine: 'redis',
      redisUrl: 'redis://r:1',
      simulator: false,
      insecure: true,
      logLevel: 'trace',
      auth: { enabled: true, secret: 'flagsecret' },
      heartbeat: { pingIntervalMs: 1000 },
      durability: 'normal',
    });
  });

  it('lets a flag set false over an env true', () => {
    expect(loadConfig({ env: { TRADESYNC_SIMULATOR: 'true' }, flags: { simulator: false } }).simulator).toBe(false);
  });

  it('rejects bad flag values, naming the flag', () => {
    const msg = configError(() => loadConfig({ flags: { engine: 'postgres' } }));
    expect(msg).toContain('--engine');
    expect(configError(() => loadConfig({ flags: { port: 'abc' } }))).toContain('--port');
    expect(configError(() => loadConfig({ flags: { pingInterval: 0 } }))).toContain('--ping-interval');
    expect(loadConfig({ flags: { port: '4000' } }).port).toBe(4000);
  });
});

describe('auth section', () => {
  it('is enabled by a secret or a JWKS URL, unless explicitly disabled', () => {
    expect(loadConfig({ env: { TRADESYNC_AUTH__JWKS_URL: 'https://idp.example/jwks.json' } }).auth).toEqual({
      enabled: true,
      jwksUrl: 'https://idp.example/jwks.json',
    });
    expect(loadConfig({ env: { TRADESYNC_AUTH__SECRET: 's', TRADESYNC_AUTH__ENABLED: 'false' } }).auth.enabled).toBe(false);
  });

  it('rejects enabled without a key source, both key sources, and non-http JWKS URLs', () => {
    expect(configError(() => loadConfig({ configFile: yamlFile('auth:\n  enabled: true\n') }))).toContain('auth.enabled');
    expect(
      configError(() => loadConfig({ env: { TRADESYNC_AUTH__SECRET: 's', TRADESYNC_AUTH__JWKS_URL: 'https://idp.example/jwks' } })),
    ).toContain('auth.jwks_url');
    expect(configError(() => loadConfig({ env: { TRADESYNC_AUTH__JWKS_URL: 'file:///etc/jwks' } }))).toContain('TRADESYNC_AUTH__JWKS_URL');
  });

  it('does not dump raw zod issues', () => {
    const msg = configError(() => loadConfig({ configFile: yamlFile('port: -1\nengine: x\n') }));
    expect(msg).not.toContain('"code"');
    expect(msg).toContain('port');
    expect(msg).toContain('engine');
  });
});

describe('isLoopback', () => {
  it.each(['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST'])(
    '%s is loopback',
    (host) => expect(isLoopback(host)).toBe(true),
  );
  it.each(['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', 'example.com', '', 'localhost.evil.com'])(
    '%s is not loopback',
    (host) => expect(isLoopback(host)).toBe(false),
  );
});

describe('assertSafeBind', () => {
  const at = (host: string, extra: Partial<Pick<GatewayConfig, 'insecure' | 'auth'>> = {}): GatewayConfig => ({ ...DEFAULT_CONFIG, host, ...extra });

  it('refuses a public bind without auth, telling the user what to do', () => {
    const msg = configError(() => assertSafeBind(at('0.0.0.0')));
    expect(msg).toMatch(/secret/i);
    expect(msg).toContain('--insecure');
    expect(() => assertSafeBind(at('::'))).toThrow(ConfigError);
    expect(() => assertSafeBind(loadConfig({ flags: { host: '0.0.0.0' } }))).toThrow(ConfigError);
  });

  it('allows a public bind with auth or --insecure', () => {
    expect(() => assertSafeBind(loadConfig({ flags: { host: '0.0.0.0', authSecret: 'x' } }))).not.toThrow();
    expect(() => assertSafeBind(loadConfig({ flags: { host: '0.0.0.0', insecure: true } }))).not.toThrow();
    expect(() => assertSafeBind(at('0.0.0.0', { auth: { enabled: true, jwksUrl: 'https://idp/jwks' } }))).not.toThrow();
  });

  it('allows loopback binds without auth', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) expect(() => assertSafeBind(at(host))).not.toThrow();
  });
});
