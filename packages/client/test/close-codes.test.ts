import { CloseCode } from '@tradesync/protocol';
import { describe, expect, it, vi } from 'vitest';
import { afterClose, type TokenSource } from '../src/close-policy.js';
import type { ClientOptions } from '../src/index.js';
import { FakeSocket } from './support/fake-socket.js';
import { STREAM, makeClient, useFakeClients } from './support/client.js';

const { track } = useFakeClients();

type Expected = 'resume' | 'snapshot' | 'stop';

/**
 * The close-code table: for each code, and each way of holding a token, what the client
 * does. `resume`: back off and resubscribe with `since`; `snapshot`: back off and
 * resubscribe without `since`; `stop`: failed, no reconnect, with a reason.
 */
const TABLE: ReadonlyArray<{ code: number; name: string; none: Expected; static: Expected; function: Expected }> = [
  { code: CloseCode.NORMAL, name: 'NORMAL', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.GOING_AWAY, name: 'GOING_AWAY', none: 'resume', static: 'resume', function: 'resume' },
  { code: 1006, name: 'abnormal closure (no close frame)', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.INVALID_PAYLOAD, name: 'INVALID_PAYLOAD', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.POLICY_VIOLATION, name: 'POLICY_VIOLATION', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.MESSAGE_TOO_BIG, name: 'MESSAGE_TOO_BIG', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.TRY_AGAIN_LATER, name: 'TRY_AGAIN_LATER', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.HEARTBEAT_TIMEOUT, name: 'HEARTBEAT_TIMEOUT', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.SLOW_CONSUMER, name: 'SLOW_CONSUMER', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.STATE_INVALIDATED, name: 'STATE_INVALIDATED', none: 'snapshot', static: 'snapshot', function: 'snapshot' },
  { code: 4050, name: 'another code of the resume range', none: 'resume', static: 'resume', function: 'resume' },
  { code: CloseCode.UNAUTHORIZED, name: 'UNAUTHORIZED', none: 'stop', static: 'stop', function: 'resume' },
  { code: CloseCode.TOKEN_EXPIRED, name: 'TOKEN_EXPIRED', none: 'stop', static: 'stop', function: 'resume' },
  { code: 4150, name: 'another code of the re-authenticate range', none: 'stop', static: 'stop', function: 'resume' },
  { code: CloseCode.REJECTED, name: 'REJECTED', none: 'stop', static: 'stop', function: 'stop' },
  { code: 4250, name: 'another code of the stop range', none: 'stop', static: 'stop', function: 'stop' },
];

const tokenOption = (source: TokenSource): Partial<ClientOptions> =>
  source === 'none' ? {} : source === 'static' ? { token: 'static-token' } : { token: async () => `fresh-${FakeSocket.all.length}` };

/** Opens a client holding its token as `source`, synced at offset 5, and lets the server close with `code`. */
async function closeWith(code: number, source: TokenSource) {
  const client = track(makeClient(tokenOption(source)));
  client.subscribe(STREAM);
  const first = FakeSocket.last;
  first.accept();
  await vi.advanceTimersByTimeAsync(0);
  if (source !== 'none') first.receive({ type: 'authenticated', id: first.lastOf('auth').id, accounts: '*', can_trade: true });
  await vi.advanceTimersByTimeAsync(0);
  first.answerSubscribe(STREAM, { offset: 5 });
  await vi.advanceTimersByTimeAsync(0);
  expect(client.status.state).toBe('connected');
  first.drop(code, 'closed by the test');
  return client;
}

describe('the close-code policy', () => {
  it('has a row for every close code of the protocol', () => {
    for (const code of Object.values(CloseCode)) expect(TABLE.map((row) => row.code)).toContain(code);
  });

  for (const row of TABLE) {
    for (const source of ['none', 'static', 'function'] as const) {
      const expected = row[source];
      it(`${row.code} ${row.name} with ${source === 'none' ? 'no token' : `a ${source} token`}: ${expected}`, async () => {
        const decision = afterClose(row.code, 'closed by the test', source);
        expect(decision.next).toBe(expected === 'stop' ? 'stop' : 'retry');
        if (decision.next === 'retry') expect(decision.snapshot).toBe(expected === 'snapshot');

        const client = await closeWith(row.code, source);
        expect(client.status.lastClose).toEqual({ code: row.code, reason: 'closed by the test' });
        if (expected === 'stop') {
          expect(client.status).toMatchObject({ state: 'failed', nextRetryAt: null });
          expect(client.status.stopReason).toContain(String(row.code));
          await vi.advanceTimersByTimeAsync(10 * 60_000);
          expect(FakeSocket.all).toHaveLength(1);
          return;
        }
        expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1, stopReason: null });
        await vi.advanceTimersByTimeAsync(1000);
        expect(FakeSocket.all).toHaveLength(2);
        const socket = FakeSocket.last;
        socket.accept();
        await vi.advanceTimersByTimeAsync(0);
        if (source !== 'none') {
          const auth = socket.lastOf('auth');
          // A token function is asked again: the new connection carries a new token.
          expect(auth.data).toEqual({ token: source === 'static' ? 'static-token' : 'fresh-2' });
          socket.receive({ type: 'authenticated', id: auth.id, accounts: '*', can_trade: true });
          await vi.advanceTimersByTimeAsync(0);
        }
        expect(client.status.state).toBe('connected');
        expect(socket.lastOf('subscribe').data).toEqual(expected === 'snapshot' ? { stream: STREAM } : { stream: STREAM, since: { epoch: 'e1', offset: 5 } });
      });
    }
  }
});

describe('a refused token', () => {
  it('stops at once with a clear reason when the server refuses a static token (no 10 retries with the same token)', async () => {
    const client = track(makeClient({ token: 'bad' }));
    const socket = FakeSocket.last;
    socket.accept();
    await vi.advanceTimersByTimeAsync(0);
    // The gateway answers the auth with an error, then closes with 4001.
    socket.receive({ type: 'error', id: socket.lastOf('auth').id, success: false, error: { code: 'UNAUTHORIZED', message: 'invalid signature' } });
    await vi.advanceTimersByTimeAsync(0);
    socket.drop(4001, 'unauthorized');
    expect(client.status).toMatchObject({ state: 'failed', lastClose: { code: 4001 } });
    expect(client.status.stopReason).toMatch(/static token/);
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('asks the token function for a new token after the server refused one', async () => {
    const token = vi.fn<() => Promise<string>>().mockResolvedValueOnce('expired').mockResolvedValue('good');
    const client = track(makeClient({ token }));
    const first = FakeSocket.last;
    first.accept();
    await vi.advanceTimersByTimeAsync(0);
    first.receive({ type: 'error', id: first.lastOf('auth').id, success: false, error: { code: 'UNAUTHORIZED', message: 'token expired' } });
    await vi.advanceTimersByTimeAsync(0);
    expect(client.status).toMatchObject({ state: 'reconnecting', attempt: 1, lastClose: { code: 4001 } });
    await vi.advanceTimersByTimeAsync(1000);
    const second = FakeSocket.last;
    second.accept();
    await vi.advanceTimersByTimeAsync(0);
    expect(second.lastOf('auth').data).toEqual({ token: 'good' });
    second.receive({ type: 'authenticated', id: second.lastOf('auth').id, accounts: '*', can_trade: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(client.status.state).toBe('connected');
  });

  it('starts over with fresh attempts on reconnectNow() after stopping', async () => {
    const client = await closeWith(CloseCode.REJECTED, 'none');
    expect(client.status.state).toBe('failed');
    client.reconnectNow();
    expect(client.status).toMatchObject({ state: 'connecting', attempt: 0, stopReason: null });
    FakeSocket.last.accept();
    expect(client.status.state).toBe('connected');
  });
});

