import { describe, expect, it } from 'vitest';
import {
  CLIENT_MESSAGES,
  ClientEnvelope,
  CloseCode,
  closeCodePolicy,
  CommandData,
  Decimal,
  GetInitialStateData,
  IsoTime,
  parseServerMessage,
  parseStream,
  SubscribeData,
} from '../src/index.js';

describe('parseStream', () => {
  it('accepts an account stream and reports its kind and account', () => {
    expect(parseStream('orders:demo')).toEqual({ name: 'orders:demo', kind: 'orders', account: 'demo' });
  });

  it('accepts a market stream and reports its symbol', () => {
    expect(parseStream('market:BTC-USD')).toEqual({ name: 'market:BTC-USD', kind: 'market', symbol: 'BTC-USD' });
  });

  it('accepts an account name with a dash and a digit', () => {
    expect(parseStream('state_machines:demo-2')).toEqual({ name: 'state_machines:demo-2', kind: 'state_machines', account: 'demo-2' });
  });

  it.each(['portfolio', 'orders', 'signals', 'state_machines', 'indicators', 'alerts'])('accepts every account kind such as %s', (kind) => {
    expect(parseStream(`${kind}:acct_1`)?.kind).toBe(kind);
  });

  it.each([
    ['an unknown kind', 'foo:bar'],
    ['an empty account', 'orders:'],
    ['no colon at all', 'orders'],
    ['an empty market symbol', 'market:'],
    ['an empty kind', ':demo'],
    ['a space in the account', 'orders:de mo'],
    ['a leading space', ' orders:demo'],
    ['a trailing space', 'orders:demo '],
    ['a space in the symbol', 'market:BTC USD'],
    ['an account starting with a dash', 'orders:-demo'],
    ['a second colon', 'orders:demo:x'],
    ['an account longer than 64 characters', `orders:${'a'.repeat(65)}`],
    ['a symbol longer than 32 characters', `market:${'B'.repeat(33)}`],
    ['a name longer than 100 characters', `orders:${'a'.repeat(100)}`],
    ['the empty string', ''],
  ])('rejects %s (%j)', (_label, name) => {
    expect(parseStream(name)).toBeUndefined();
  });

  it('accepts the longest allowed account name', () => {
    expect(parseStream(`orders:${'a'.repeat(64)}`)).toBeDefined();
  });

  it.each([[undefined], [null], [42], [{}], [['orders:demo']], [true]])('rejects the non-string %j', (value) => {
    expect(parseStream(value)).toBeUndefined();
  });
});

describe('Decimal', () => {
  it.each(['42000.50', '-1', '0', '0.00000001', '123456789012345678901234567890'])('accepts the decimal string %j', (value) => {
    expect(Decimal.safeParse(value).success).toBe(true);
  });

  it.each([[1.5], [42], ['1e5'], ['abc'], [''], ['1.'], ['.5'], ['+1'], [' 1'], ['1,5'], ['NaN'], [null]])('rejects %j', (value) => {
    expect(Decimal.safeParse(value).success).toBe(false);
  });
});

describe('IsoTime', () => {
  it('accepts UTC times ending in Z, with or without fractions', () => {
    expect(IsoTime.safeParse('2024-01-01T00:00:00Z').success).toBe(true);
    expect(IsoTime.safeParse(new Date(0).toISOString()).success).toBe(true);
  });

  it('rejects times with an offset or without a zone', () => {
    expect(IsoTime.safeParse('2024-01-01T00:00:00+01:00').success).toBe(false);
    expect(IsoTime.safeParse('2024-01-01T00:00:00').success).toBe(false);
  });
});

describe('client messages', () => {
  it('accept an envelope with id, type and data', () => {
    expect(ClientEnvelope.safeParse({ id: 'r1', type: 'subscribe', data: { stream: 'orders:demo' } }).success).toBe(true);
    expect(ClientEnvelope.safeParse({ type: 'ping' }).success).toBe(true);
  });

  it('reject an envelope without a type, with an empty type, or with non-object data', () => {
    expect(ClientEnvelope.safeParse({ id: 'r1' }).success).toBe(false);
    expect(ClientEnvelope.safeParse({ type: '' }).success).toBe(false);
    expect(ClientEnvelope.safeParse({ type: 'subscribe', data: 'orders:demo' }).success).toBe(false);
    expect(ClientEnvelope.safeParse({ type: 'subscribe', id: 7 }).success).toBe(false);
  });

  it('accept a subscribe with params and since', () => {
    const data = { stream: 'orders:demo', params: { session_id: 's-1' }, since: { epoch: 'e1', offset: 12 } };
    expect(SubscribeData.parse(data)).toEqual(data);
  });

  it('accept a subscribe from the beginning (offset 0)', () => {
    expect(SubscribeData.safeParse({ stream: 'orders:demo', since: { epoch: 'e1', offset: 0 } }).success).toBe(true);
  });

  it.each([
    ['no stream', { since: { epoch: 'e1', offset: 1 } }],
    ['a numeric stream', { stream: 5 }],
    ['a negative offset', { stream: 'orders:demo', since: { epoch: 'e1', offset: -1 } }],
    ['a fractional offset', { stream: 'orders:demo', since: { epoch: 'e1', offset: 1.5 } }],
    ['a string offset', { stream: 'orders:demo', since: { epoch: 'e1', offset: '1' } }],
    ['a since without epoch', { stream: 'orders:demo', since: { offset: 1 } }],
  ])('reject a subscribe with %s', (_label, data) => {
    expect(SubscribeData.safeParse(data).success).toBe(false);
  });

  it('accept get_initial_state with and without include', () => {
    expect(GetInitialStateData.safeParse({}).success).toBe(true);
    expect(GetInitialStateData.safeParse({ include: ['portfolio', 'orders'] }).success).toBe(true);
  });

  it('reject get_initial_state whose include is not a list of strings or is too long', () => {
    expect(GetInitialStateData.safeParse({ include: 'portfolio' }).success).toBe(false);
    expect(GetInitialStateData.safeParse({ include: [1] }).success).toBe(false);
    expect(GetInitialStateData.safeParse({ include: Array.from({ length: 17 }, () => 'orders') }).success).toBe(false);
  });

  it('accept a command and keep its extra fields', () => {
    const data = { action: 'execute_signal', signal_id: 'sig-1', command_id: 'c-1' };
    expect(CommandData.parse(data)).toEqual(data);
  });

  it('reject a command without an action or with an empty one', () => {
    expect(CommandData.safeParse({ signal_id: 'sig-1' }).success).toBe(false);
    expect(CommandData.safeParse({ action: '' }).success).toBe(false);
  });

  it('cover every client message type of the wire contract', () => {
    expect(Object.keys(CLIENT_MESSAGES).sort()).toEqual(
      ['auth', 'command', 'get_initial_state', 'ping', 'state_sync_request', 'subscribe', 'unsubscribe'].sort(),
    );
  });

  it('reject an auth without a token', () => {
    expect(CLIENT_MESSAGES.auth.safeParse({}).success).toBe(false);
    expect(CLIENT_MESSAGES.auth.safeParse({ token: '' }).success).toBe(false);
    expect(CLIENT_MESSAGES.auth.safeParse({ token: 'abc' }).success).toBe(true);
  });
});

describe('parseServerMessage', () => {
  const ts = '2024-01-01T00:00:00.000Z';
  const event = { type: 'order:updated', stream: 'orders:demo', epoch: 'e1', offset: 3, timestamp: ts, data: { order_id: 'o-1' } };

  it('accepts a valid connected message', () => {
    const msg = {
      type: 'connected',
      sequence_number: 0,
      timestamp: ts,
      connection_id: '3f1c1f0e-8a3b-4c4f-9a53-5b7a1d2e3f40',
      heartbeat_interval: 30,
    };
    const result = parseServerMessage(msg);
    expect(result.success).toBe(true);
    expect(result.success && result.data).toEqual(msg);
  });

  it('accepts a subscribed message carrying a snapshot', () => {
    const msg = {
      type: 'subscribed',
      id: 'r1',
      sequence_number: 1,
      timestamp: ts,
      stream: 'orders:demo',
      epoch: 'e1',
      offset: 7,
      recovered: false,
      snapshot: { epoch: 'e1', offset: 7, state: { orders: {} } },
    };
    expect(parseServerMessage(msg).success).toBe(true);
  });

  it('accepts a subscribed message carrying the missed events', () => {
    const msg = { type: 'subscribed', sequence_number: 1, timestamp: ts, stream: 'orders:demo', epoch: 'e1', offset: 3, recovered: true, events: [event] };
    expect(parseServerMessage(msg).success).toBe(true);
  });

  it('accepts a live event message', () => {
    const result = parseServerMessage({ ...event, sequence_number: 2 });
    expect(result.success).toBe(true);
    expect(result.success && result.data.type).toBe('order:updated');
  });

  it('accepts a batch_update whose events keep their own stream, epoch and offset', () => {
    const msg = {
      type: 'batch_update',
      sequence_number: 3,
      timestamp: ts,
      events: [event, { ...event, stream: 'signals:demo', type: 'signal:new', offset: 1, data: { id: 'sig-1' } }],
    };
    expect(parseServerMessage(msg).success).toBe(true);
  });

  it('accepts an error reply', () => {
    const msg = { type: 'error', id: 'r1', sequence_number: 4, timestamp: ts, success: false, error: { code: 'INVALID_STREAM', message: 'bad' } };
    expect(parseServerMessage(msg).success).toBe(true);
  });

  it.each([
    ['connected without sequence_number', { type: 'connected', timestamp: ts, connection_id: '3f1c1f0e-8a3b-4c4f-9a53-5b7a1d2e3f40', heartbeat_interval: 30 }],
    ['connected without timestamp', { type: 'connected', sequence_number: 0, connection_id: '3f1c1f0e-8a3b-4c4f-9a53-5b7a1d2e3f40', heartbeat_interval: 30 }],
    ['a live event without sequence_number', { ...event }],
    ['a live event without timestamp', { ...event, timestamp: undefined, sequence_number: 2 }],
    ['a live event with offset 0', { ...event, offset: 0, sequence_number: 2 }],
    ['a live event without stream', { ...event, stream: undefined, sequence_number: 2 }],
    ['a batch_update without sequence_number', { type: 'batch_update', timestamp: ts, events: [] }],
    ['a pong without timestamp', { type: 'pong', sequence_number: 5 }],
    ['a negative sequence_number', { type: 'pong', sequence_number: -1, timestamp: ts }],
    ['a non-UTC timestamp', { type: 'pong', sequence_number: 1, timestamp: '2024-01-01T00:00:00+02:00' }],
  ])('rejects %s', (_label, msg) => {
    expect(parseServerMessage(msg).success).toBe(false);
  });

  it.each([[null], ['connected'], [42], [[]]])('rejects the non-object %j', (value) => {
    expect(parseServerMessage(value).success).toBe(false);
  });
});

describe('closeCodePolicy', () => {
  it.each([1000, 1001, 1006, 1008, 1009, 1011, 4000, 4008, 4009, 4099])('resumes after close code %i', (code) => {
    expect(closeCodePolicy(code)).toBe('resume');
  });

  it.each([CloseCode.UNAUTHORIZED, 4100, CloseCode.TOKEN_EXPIRED, 4150, 4199])('re-authenticates after close code %i', (code) => {
    expect(closeCodePolicy(code)).toBe('reauthenticate');
  });

  it.each([CloseCode.REJECTED, 4250, 4299])('stops after close code %i', (code) => {
    expect(closeCodePolicy(code)).toBe('stop');
  });

  it('treats the codes just outside the ranges by their neighbours', () => {
    expect(closeCodePolicy(4300)).toBe('resume');
    expect(closeCodePolicy(3999)).toBe('resume');
  });

  it('uses 4001 for a missing or invalid token, as the wire contract says', () => {
    expect(CloseCode.UNAUTHORIZED).toBe(4001);
  });
});
