import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { http, metric, order, position, publish, startGateway, TestClient, tick, type TestGateway } from '@tradesync/testing';

describe('a bad message gets a clear error and the connection stays usable', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  // [what is wrong, the raw frame, the error code, the id the error must echo]
  const cases: Array<[string, string, string, string | undefined]> = [
    ['a frame that is not JSON', '{"type": "ping",', 'INVALID_MESSAGE', undefined],
    ['a JSON value that is not an object', '42', 'INVALID_MESSAGE', undefined],
    ['a JSON null', 'null', 'INVALID_MESSAGE', undefined],
    ['a message without a type', '{"id":"x1","data":{}}', 'INVALID_MESSAGE', 'x1'],
    ['a type that is not a string', '{"id":"x2","type":7}', 'INVALID_MESSAGE', 'x2'],
    ['data that is not an object', '{"id":"x3","type":"ping","data":[1,2]}', 'INVALID_MESSAGE', 'x3'],
    ['an unknown type', '{"id":"x4","type":"teleport"}', 'UNKNOWN_TYPE', 'x4'],
    ['a subscribe without data', '{"id":"x5","type":"subscribe"}', 'INVALID_MESSAGE', 'x5'],
    ['a subscribe whose stream is a number', '{"id":"x6","type":"subscribe","data":{"stream":42}}', 'INVALID_MESSAGE', 'x6'],
    ['a subscribe whose since.offset is a string', '{"id":"x7","type":"subscribe","data":{"stream":"market:BTC-USD","since":{"epoch":"e","offset":"x"}}}', 'INVALID_MESSAGE', 'x7'],
    ['a subscribe whose since.offset is negative', '{"id":"x8","type":"subscribe","data":{"stream":"market:BTC-USD","since":{"epoch":"e","offset":-1}}}', 'INVALID_MESSAGE', 'x8'],
    ['a subscribe to a stream of an unknown kind', '{"id":"x9","type":"subscribe","data":{"stream":"foo:bar"}}', 'INVALID_STREAM', 'x9'],
    ['a subscribe to a stream without an account', '{"id":"x10","type":"subscribe","data":{"stream":"orders:"}}', 'INVALID_STREAM', 'x10'],
    ['a subscribe to a stream without a colon', '{"id":"x11","type":"subscribe","data":{"stream":"orders"}}', 'INVALID_STREAM', 'x11'],
    ['an unsubscribe from a malformed stream', '{"id":"x12","type":"unsubscribe","data":{"stream":"market:"}}', 'INVALID_STREAM', 'x12'],
    ['a get_initial_state with an unknown part', '{"id":"x13","type":"get_initial_state","data":{"include":["portfolio","secrets"]}}', 'INVALID_INCLUDE', 'x13'],
    ['a get_initial_state whose include is not an array', '{"id":"x14","type":"get_initial_state","data":{"include":"portfolio"}}', 'INVALID_MESSAGE', 'x14'],
    ['a state_sync_request for a malformed account', '{"id":"x15","type":"state_sync_request","data":{"account":"no spaces allowed"}}', 'INVALID_MESSAGE', 'x15'],
    ['a command without an action', '{"id":"x16","type":"command","data":{}}', 'INVALID_MESSAGE', 'x16'],
    ['an auth without a token', '{"id":"x17","type":"auth","data":{}}', 'INVALID_MESSAGE', 'x17'],
  ];

  it.each(cases)('answers %s with its error code and still answers a ping', async (_what, frame, code, id) => {
    await using client = await TestClient.connect(gw.wsUrl);
    client.send(frame);
    const error = await client.next((m) => m.type === 'error');
    expect(error).toMatchObject({ type: 'error', success: false, error: { code } });
    expect((error.error as { message: string }).message.length).toBeGreaterThan(0);
    expect(error.id).toBe(id);
    const pong = await client.request('ping');
    expect(pong.type).toBe('pong');
    expect(client.socket.readyState).toBe(client.socket.OPEN);
  });

  it('answers a message nested deeper than the limit with INVALID_MESSAGE, numbering every message without a gap', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    const answered = client.next((m) => m.id === 'deep');
    client.send(`{"id":"deep","type":"ping","data":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`);
    const reply = await answered;
    expect(reply).toMatchObject({ type: 'error', error: { code: 'INVALID_MESSAGE', message: expect.stringContaining('nested deeper') } });
    expect((await client.request('ping')).type).toBe('pong');
    expect(client.messages.map((m) => m.sequence_number)).toEqual([0, 1, 2]);
  });

  it('answers a binary frame with INVALID_MESSAGE and still answers a ping', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    const error = await client.next((m) => m.type === 'error');
    expect(error).toMatchObject({ error: { code: 'INVALID_MESSAGE' } });
    expect((await client.request('ping')).type).toBe('pong');
  });

  it('survives a volley of different bad messages on one connection and answers each in turn', async () => {
    await using client = await TestClient.connect(gw.wsUrl);
    for (const [, frame] of cases) client.send(frame);
    await vi.waitFor(() => expect(client.messages.filter((m) => m.type === 'error')).toHaveLength(cases.length));
    expect(client.messages.filter((m) => m.type === 'error').map((m) => (m.error as { code: string }).code)).toEqual(cases.map((c) => c[2]));
    expect((await client.request('ping')).type).toBe('pong');
  });
});

describe('abuse limits', () => {
  it('answers a frame over the size limit with PAYLOAD_TOO_LARGE, then closes with 1009', async () => {
    await using gw = await startGateway({ limits: { maxPayloadBytes: 1024 } });
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ id: 'big', type: 'ping', data: { pad: 'x'.repeat(2000) } });
    const error = await client.next((m) => m.type === 'error');
    expect(error).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    const closed = await client.closed;
    expect(closed.code).toBe(1009);
  });

  it('accepts a frame exactly at the size limit', async () => {
    await using gw = await startGateway({ limits: { maxPayloadBytes: 1024 } });
    await using client = await TestClient.connect(gw.wsUrl);
    const skeleton = JSON.stringify({ id: 'edge', type: 'ping', data: { pad: '' } });
    client.send(JSON.stringify({ id: 'edge', type: 'ping', data: { pad: 'x'.repeat(1024 - skeleton.length) } }));
    expect((await client.next((m) => m.id === 'edge')).type).toBe('pong');
  });

  it('closes with 1009 a frame far over the limit, without reading it', async () => {
    await using gw = await startGateway({ limits: { maxPayloadBytes: 1024 } });
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ type: 'ping', data: { pad: 'x'.repeat(64 * 1024) } });
    expect((await client.closed).code).toBe(1009);
  });

  it('drops a flood far beyond the burst with RATE_LIMITED errors and closes the connection with 1008', async () => {
    await using gw = await startGateway({ limits: { messagesPerSecond: 5, messageBurst: 10 } });
    await using client = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 200; i++) client.send({ id: `f${i}`, type: 'ping' });
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    const pongs = client.messages.filter((m) => m.type === 'pong');
    const limited = client.messages.filter((m) => m.type === 'error' && (m.error as { code: string }).code === 'RATE_LIMITED');
    // The burst is served first, in order, before any drop is reported.
    expect(client.messages.slice(1, 11).map((m) => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => `f${i}`));
    expect(pongs.length).toBeLessThan(20);
    expect(limited.length).toBeGreaterThan(0);
    expect(await metric(gw.url, 'tradesync_errors_sent_total', { code: 'RATE_LIMITED' })).toBe(limited.length);
  });

  it('closes a flood that goes on at only twice the allowed rate, not just a burst', async () => {
    await using gw = await startGateway({ limits: { messagesPerSecond: 20, messageBurst: 5 } });
    await using client = await TestClient.connect(gw.wsUrl);
    // 40 messages a second against 20 allowed: each second drops about 20, more than the burst.
    const timer = setInterval(() => client.send({ type: 'ping' }), 25);
    try {
      expect((await client.closed).code).toBe(1008);
    } finally {
      clearInterval(timer);
    }
    expect(client.messages.some((m) => m.type === 'pong')).toBe(true);
  });

  it('answers a moderate excess with RATE_LIMITED and serves the connection again once tokens refill', async () => {
    await using gw = await startGateway({ limits: { messagesPerSecond: 20, messageBurst: 10 } });
    await using client = await TestClient.connect(gw.wsUrl);
    for (let i = 0; i < 14; i++) client.send({ id: `m${i}`, type: 'ping' });
    await vi.waitFor(() => expect(client.messages.length).toBe(1 + 14));
    expect(client.messages.slice(1, 11).map((m) => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    const limited = client.messages.filter((m) => m.type === 'error');
    expect(limited.length).toBeGreaterThanOrEqual(1);
    for (const m of limited) expect(m.error).toMatchObject({ code: 'RATE_LIMITED' });
    // Waiting lets the bucket refill (20 tokens/s); this pause is the scenario, not an assertion.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await client.request('ping')).type).toBe('pong');
    expect(client.socket.readyState).toBe(client.socket.OPEN);
  });

  it('refuses a subscription beyond maxSubscriptions with TOO_MANY_SUBSCRIPTIONS but allows re-subscribing to a held stream', async () => {
    await using gw = await startGateway({ limits: { maxSubscriptions: 2 } });
    await using client = await TestClient.connect(gw.wsUrl);
    expect((await client.request('subscribe', { stream: 'market:A' })).type).toBe('subscribed');
    expect((await client.request('subscribe', { stream: 'market:B' })).type).toBe('subscribed');
    const third = await client.request('subscribe', { stream: 'market:C' });
    expect(third).toMatchObject({ type: 'error', error: { code: 'TOO_MANY_SUBSCRIPTIONS' } });
    expect((await client.request('subscribe', { stream: 'market:A' })).type).toBe('subscribed');
    await client.request('unsubscribe', { stream: 'market:B' });
    expect((await client.request('subscribe', { stream: 'market:C' })).type).toBe('subscribed');
  });

  it('enforces maxSubscriptions when the subscribes are sent without waiting for replies', async () => {
    await using gw = await startGateway({ limits: { maxSubscriptions: 2 } });
    await using client = await TestClient.connect(gw.wsUrl);
    const streams = ['orders:a1', 'orders:a2', 'orders:a3', 'orders:a4'];
    streams.forEach((stream, i) => client.send({ id: `s${i}`, type: 'subscribe', data: { stream } }));
    await vi.waitFor(() => expect(client.messages.length).toBe(1 + streams.length));
    expect(client.messages.filter((m) => m.type === 'subscribed')).toHaveLength(2);
    expect(client.messages.filter((m) => m.type === 'error').map((m) => (m.error as { code: string }).code)).toEqual([
      'TOO_MANY_SUBSCRIPTIONS',
      'TOO_MANY_SUBSCRIPTIONS',
    ]);
    const state = await client.request('get_initial_state', { include: ['subscriptions'] });
    expect((state.data as { subscriptions: { streams: unknown[] } }).subscriptions.streams).toHaveLength(2);
  });

  it('ends subscribed-then-unsubscribed when both are sent back to back', async () => {
    await using gw = await startGateway();
    await using client = await TestClient.connect(gw.wsUrl);
    client.send({ id: 'sub', type: 'subscribe', data: { stream: 'orders:race' } });
    client.send({ id: 'unsub', type: 'unsubscribe', data: { stream: 'orders:race' } });
    await vi.waitFor(() => expect(client.messages).toHaveLength(3));
    // Replies come in request order, and the last word is the unsubscribe.
    expect(client.messages.slice(1).map((m) => [m.id, m.type])).toEqual([
      ['sub', 'subscribed'],
      ['unsub', 'unsubscribed'],
    ]);
    await client.request('subscribe', { stream: 'market:SENTINEL' });
    await publish(gw.url, [order('race')]);
    await publish(gw.url, [tick('SENTINEL', '1')]);
    await client.next((m) => m.stream === 'market:SENTINEL' && m.type === 'market:tick');
    expect(client.events('orders:race')).toEqual([]);
  });
});

describe('REST publish rejects bad input, all or nothing', () => {
  const goodOrder = () => order('rest');
  const cases: Array<[string, () => unknown[], string]> = [
    ['an unknown stream kind', () => [goodOrder(), { stream: 'foo:bar', type: 'order:updated', data: goodOrder().data }], 'INVALID_STREAM'],
    ['a stream without an account', () => [goodOrder(), { ...goodOrder(), stream: 'orders:' }], 'INVALID_STREAM'],
    ['an event type of another stream kind', () => [goodOrder(), { ...tick('BTC-USD', '1'), stream: 'orders:rest' }], 'INVALID_EVENT'],
    ['an unknown event type', () => [goodOrder(), { ...goodOrder(), type: 'order:exploded' }], 'INVALID_EVENT'],
    ['a decimal sent as a JSON number', () => [goodOrder(), order('rest', { price: 1.5 })], 'INVALID_EVENT'],
    ['a decimal string that is not a number', () => [goodOrder(), order('rest', { quantity: '1,5' })], 'INVALID_EVENT'],
    ['an event without data', () => [goodOrder(), { stream: 'orders:rest', type: 'order:updated' }], 'INVALID_EVENT'],
    ['a tick whose symbol is not the stream symbol', () => [goodOrder(), { ...tick('ETH-USD', '1'), stream: 'market:BTC-USD' }], 'INVALID_EVENT'],
    // As a plain object's key it would replace the prototype: the entity would vanish from the state.
    ['an entity keyed "__proto__"', () => [goodOrder(), order('rest', { order_id: '__proto__' })], 'INVALID_EVENT'],
    ['a position keyed "__proto__"', () => [goodOrder(), { ...position('rest', { symbol: '__proto__' }), stream: 'portfolio:rest' }], 'INVALID_EVENT'],
  ];

  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it.each(cases)('answers %s with 400 and its code, and appends none of the batch', async (_what, events, code) => {
    const before = await metric(gw.url, 'tradesync_events_appended_total');
    const answer = await publish(gw.url, events());
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ success: false, error: { code } });
    expect((answer.body.error as { message: string }).message).toMatch(/^event 1:/);
    expect(await metric(gw.url, 'tradesync_events_appended_total')).toBe(before);
    const log = await http(gw.url, `/api/v1/streams/${encodeURIComponent('orders:rest')}/events?after=0`);
    expect(log.body.events ?? []).toEqual([]);
  });

  it('answers a body over the HTTP body limit with 413 PAYLOAD_TOO_LARGE and appends nothing', async () => {
    const before = await metric(gw.url, 'tradesync_events_appended_total');
    const huge = [order('rest', { note: 'x'.repeat(17 * 1024 * 1024) })];
    const answer = await publish(gw.url, huge);
    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ success: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(await metric(gw.url, 'tradesync_events_appended_total')).toBe(before);
  });

  it('answers a body nested deeper than the limit with 400 INVALID_MESSAGE, appends nothing and serves the next publish', async () => {
    const deep = `[{"stream":"orders:rest","type":"order:updated","data":${JSON.stringify(goodOrder().data).slice(0, -1)},"deep":${'['.repeat(5000)}${']'.repeat(5000)}}}]`;
    const answer = await http(gw.url, '/api/v1/events', { method: 'POST', body: deep, headers: { 'content-type': 'application/json' } });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ success: false, error: { code: 'INVALID_MESSAGE', message: expect.stringContaining('nested deeper') } });
    expect((await publish(gw.url, [order('deep')])).status).toBe(200);
  });

  it('answers a body that is not a list of events with 400 INVALID_MESSAGE', async () => {
    for (const body of ['{"hello":1}', '[]', 'not json', '{"events":"nope"}']) {
      const answer = await http(gw.url, '/api/v1/events', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      expect(answer.status, body).toBe(400);
      expect(answer.body).toMatchObject({ success: false, error: { code: 'INVALID_MESSAGE' } });
    }
  });
});
