import { describe, expect, it, vi } from 'vitest';
import { EngineUnavailableError } from '../src/engines/engine.js';
import { judgeDurability, parseInfo, RedisEngine, type RedisEngineOptions } from '../src/engines/redis/index.js';
import { http, order, publish, startGateway } from '@tradesync/testing';
import { startRedis, type TestRedisOptions } from '@tradesync/testing/redis';

/*
 * The gateway refuses to acknowledge what Redis cannot keep (`redis_durability`):
 * without the append-only file, appends answer 503 and /health says which setting to
 * change; `fsync` also needs `appendfsync always`; `redis_wait_replicas` fails appends
 * that too few replicas acknowledged. Each test runs its own private redis-server.
 */

interface Logged {
  readonly level: string;
  readonly message: string;
}

function recorder(): { log: NonNullable<RedisEngineOptions['log']>; lines: Logged[] } {
  const lines: Logged[] = [];
  const at =
    (level: string) =>
    (a: unknown, b?: unknown): void => {
      lines.push({ level, message: typeof a === 'string' ? a : String(b) });
    };
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } as never };
}

async function gatewayOver(redisOptions: TestRedisOptions, engineOptions: Partial<RedisEngineOptions> = {}) {
  const redis = await startRedis(redisOptions);
  const { log, lines } = recorder();
  const engine = new RedisEngine({ url: redis.url, watchIntervalMs: 200, log, ...engineOptions });
  const gateway = await startGateway({}, { engine });
  return {
    redis,
    gateway,
    engine,
    lines,
    async [Symbol.asyncDispose]() {
      await gateway[Symbol.asyncDispose]();
      await redis[Symbol.asyncDispose]();
    },
  };
}

const warnings = (lines: Logged[], text: string) => lines.filter((l) => l.level === 'warn' && l.message.includes(text));

describe('judgeDurability', () => {
  const info = (text: string) => parseInfo(`# Persistence\r\nloading:0\r\n${text}\r\n`);
  it('requires aof_enabled:1 for aof and fsync, and appendfsync always for fsync', () => {
    expect(judgeDurability('none', info('aof_enabled:0'))).toMatchObject({ ok: true });
    expect(judgeDurability('aof', info('aof_enabled:0'))).toMatchObject({ ok: false, code: 'aof-off', detail: expect.stringContaining('appendonly yes') });
    expect(judgeDurability('aof', info('aof_enabled:1\r\naof_last_write_status:ok'))).toMatchObject({ ok: true });
    expect(judgeDurability('aof', info('aof_enabled:1\r\naof_last_write_status:err'))).toMatchObject({ ok: false, code: 'aof-write-error' });
    expect(judgeDurability('fsync', info('aof_enabled:1'), { value: 'everysec' })).toMatchObject({
      ok: false,
      code: 'fsync-not-always',
      detail: expect.stringContaining('appendfsync always'),
    });
    expect(judgeDurability('fsync', info('aof_enabled:1'), { error: 'ERR unknown command' })).toMatchObject({ ok: false, code: 'config-unavailable' });
    expect(judgeDurability('fsync', info('aof_enabled:1'), { value: 'always' })).toMatchObject({ ok: true });
  });
});

describe("redis_durability: 'aof'", () => {
  it('answers 503 UNAVAILABLE to publishes and is unhealthy while Redis runs with appendonly no, and accepts once it is turned on', async () => {
    await using t = await gatewayOver({ appendonly: false }, { durability: 'aof' });
    const refused = await publish(t.gateway.url, [order('dur1', { order_id: 'a' })]);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ success: false, error: { code: 'UNAVAILABLE' } });
    await expect(t.engine.append([{ stream: 'orders:dur1', type: 'order:updated', data: {} }])).rejects.toThrow(/appendonly yes/);
    const health = await http(t.gateway.url, '/health');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'unhealthy', engine: { kind: 'redis', ok: false, detail: expect.stringContaining('appendonly yes') } });
    expect(warnings(t.lines, 'aof_enabled:0')).toHaveLength(1);

    await t.redis.command('CONFIG', 'SET', 'appendonly', 'yes');
    await vi.waitFor(async () => expect((await publish(t.gateway.url, [order('dur1', { order_id: 'b' })])).status).toBe(200), { timeout: 5000, interval: 100 });
    expect((await http(t.gateway.url, '/health')).status).toBe(200);
    // One WARN per change of verdict, not one per check.
    expect(warnings(t.lines, 'aof_enabled:0')).toHaveLength(1);
    expect(warnings(t.lines, 'appends are accepted')).toHaveLength(1);
  });

  it('accepts publishes with appendonly yes, and refuses within seconds once persistence is switched off at runtime', async () => {
    await using t = await gatewayOver({ appendonly: true, appendfsync: 'everysec' }, { durability: 'aof', watchIntervalMs: 1000 });
    expect((await publish(t.gateway.url, [order('dur2', { order_id: 'a' })])).status).toBe(200);
    expect((await http(t.gateway.url, '/health')).status).toBe(200);

    await t.redis.command('CONFIG', 'SET', 'appendonly', 'no');
    const started = Date.now();
    await vi.waitFor(async () => expect((await publish(t.gateway.url, [order('dur2', { order_id: 'b' })])).status).toBe(503), { timeout: 5000, interval: 50 });
    expect(Date.now() - started).toBeLessThan(3000);
    const health = await http(t.gateway.url, '/health');
    expect(health.body).toMatchObject({ engine: { ok: false, detail: expect.stringContaining('appendonly yes') } });
    await vi.waitFor(() => expect(warnings(t.lines, 'aof_enabled:0')).toHaveLength(1));
  });

  it('checks again after a reconnect: a Redis restarted without persistence is refused', async () => {
    await using t = await gatewayOver({ appendonly: true, appendfsync: 'everysec' }, { durability: 'aof', watchIntervalMs: 60_000 });
    expect((await publish(t.gateway.url, [order('dur3', { order_id: 'a' })])).status).toBe(200);
    await t.redis.command('CONFIG', 'SET', 'appendonly', 'no');
    // The periodic check is far away: only the reconnect can notice.
    await t.redis.command('CLIENT', 'KILL', 'TYPE', 'normal');
    await vi.waitFor(
      async () => expect((await http(t.gateway.url, '/health')).body).toMatchObject({ engine: { ok: false, detail: expect.stringContaining('aof_enabled:0') } }),
      { timeout: 5000, interval: 50 },
    );
    const refused = await publish(t.gateway.url, [order('dur3', { order_id: 'b' })]);
    expect(refused.status).toBe(503);
  });
});

describe("redis_durability: 'fsync' (the default)", () => {
  it('refuses appendfsync everysec, naming appendfsync always, and accepts once it is set', async () => {
    await using t = await gatewayOver({ appendonly: true, appendfsync: 'everysec' }, { durability: 'fsync' });
    const refused = await publish(t.gateway.url, [order('dur4', { order_id: 'a' })]);
    expect(refused.status).toBe(503);
    expect((await http(t.gateway.url, '/health')).body).toMatchObject({ engine: { ok: false, detail: expect.stringContaining('appendfsync always') } });
    await t.redis.command('CONFIG', 'SET', 'appendfsync', 'always');
    await vi.waitFor(async () => expect((await publish(t.gateway.url, [order('dur4', { order_id: 'b' })])).status).toBe(200), { timeout: 5000, interval: 100 });
  });

  it('accepts appendfsync always at once', async () => {
    await using t = await gatewayOver({ appendonly: true, appendfsync: 'always' }, { durability: 'fsync' });
    expect((await publish(t.gateway.url, [order('dur5', { order_id: 'a' })])).status).toBe(200);
  });

  it('refuses when CONFIG is unavailable (renamed away), saying so', async () => {
    await using t = await gatewayOver({ appendonly: true, appendfsync: 'always', args: ['--rename-command', 'CONFIG', ''] }, { durability: 'fsync' });
    expect((await publish(t.gateway.url, [order('dur6', { order_id: 'a' })])).status).toBe(503);
    expect((await http(t.gateway.url, '/health')).body).toMatchObject({ engine: { ok: false, detail: expect.stringContaining('CONFIG GET appendfsync` failed') } });
  });
});

describe("redis_durability: 'none'", () => {
  it('checks nothing and warns at open that acknowledged events can be lost', async () => {
    await using t = await gatewayOver({ appendonly: false }, { durability: 'none' });
    expect((await publish(t.gateway.url, [order('dur7', { order_id: 'a' })])).status).toBe(200);
    expect((await http(t.gateway.url, '/health')).status).toBe(200);
    expect(warnings(t.lines, 'can be lost on a Redis restart')).toHaveLength(1);
  });
});

describe('redis_wait_replicas', () => {
  it('acknowledges once enough replicas have the append, and fails it (unavailable) when they do not', async () => {
    await using primary = await startRedis();
    await using replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
    await vi.waitFor(async () => expect(await replica.command('ROLE')).toBe('*5'), { timeout: 10_000, interval: 50 });
    // ROLE of a connected replica: ["slave", host, port, "connected", offset].
    await vi.waitFor(async () => expect(await primary.command('WAIT', '1', '100')).toBe(':1'), { timeout: 10_000, interval: 100 });

    const one = new RedisEngine({ url: primary.url, commandTimeoutMs: 800, waitReplicas: 1 });
    const two = new RedisEngine({ url: primary.url, commandTimeoutMs: 800, waitReplicas: 2 });
    await one.open();
    await two.open();
    try {
      const [stored] = await one.append([{ stream: 'orders:dur8', type: 'order:updated', data: { k: 1 } }]);
      expect(stored).toMatchObject({ offset: 1 });
      const started = Date.now();
      await expect(two.append([{ stream: 'orders:dur8', type: 'order:updated', data: { k: 2 } }])).rejects.toThrow(/only 1 of 2 redis replicas/);
      expect(Date.now() - started).toBeLessThan(2000);
      // The event may exist all the same (the contract of a timeout): here it does.
      expect((await one.head('orders:dur8')).offset).toBe(2);

      await replica.kill();
      const failure = await one.append([{ stream: 'orders:dur8', type: 'order:updated', data: { k: 3 } }]).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(EngineUnavailableError);
      expect(String(failure)).toMatch(/only 0 of 1 redis replicas/);
      expect(await one.health()).toMatchObject({ ok: true });
    } finally {
      await one.close();
      await two.close();
    }
  });
});
