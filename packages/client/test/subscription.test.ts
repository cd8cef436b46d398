import { describe, expect, it } from 'vitest';
import type { ClientMessageData, ReplyTo } from '@tradesync/protocol';
import { resolveOptions } from '../src/options.js';
import { ConnectionLostError } from '../src/errors.js';
import { Streams } from '../src/streams.js';
import type { SubscriptionState } from '../src/subscription.js';
import { FakeSocket } from './support/fake-socket.js';
import { STREAM, orderEvent, quiet } from './support/client.js';

const TS = '2025-01-01T00:00:00.000Z';

/** Streams over a fake request layer: each `subscribe` waits until the test answers it. */
function setup() {
  const sent: Array<{ data: ClientMessageData<'subscribe'>; answer: (reply: Partial<ReplyTo<'subscribe'>>) => void; fail: (error: Error) => void }> = [];
  let open = true;
  const transitions: string[] = [];
  const describeState = (s: SubscriptionState) => (s.name === 'syncing' ? `syncing(${s.mode}${s.queued ? `, queued ${s.queued}` : ''})` : s.name === 'idle' ? `idle(${s.next})` : s.name);
  const streams = new Streams({
    options: resolveOptions({ url: 'ws://gw.test/ws', WebSocket: FakeSocket, fetch: null, logger: quiet, syncRetries: 1 }),
    requests: {
      send: ((type: string, data: ClientMessageData<'subscribe'>) =>
        new Promise((resolve, reject) => {
          if (type !== 'subscribe') return resolve({ type: 'unsubscribed', sequence_number: 0, timestamp: TS, stream: STREAM });
          sent.push({
            data,
            answer: (reply) => resolve({ type: 'subscribed', sequence_number: 1, timestamp: TS, stream: STREAM, epoch: 'e1', offset: 0, recovered: false, ...reply }),
            fail: reject,
          });
        })) as never,
    },
    isOpen: () => open,
    emitSynced: () => {},
    emitSyncFailed: () => {},
    emitDiverged: () => {},
    emitLost: () => {},
    emitFreshness: () => {},
    onTransition: (_sub, from, to) => transitions.push(`${describeState(from)} → ${describeState(to)}`),
  });
  const snapshot = (offset: number) => ({ epoch: 'e1', offset, recovered: false, snapshot: { epoch: 'e1', offset, state: { orders: {} } } });
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { streams, sent, transitions, snapshot, flush, setOpen: (value: boolean) => (open = value) };
}

describe('the subscription state machine', () => {
  it('goes idle → syncing → live on the first subscribe, and back to syncing on a gap', async () => {
    const { streams, sent, transitions, snapshot, flush } = setup();
    streams.subscribe(STREAM, {}, {});
    expect(streams.get(STREAM)!.state.name).toBe('syncing');
    sent[0]!.answer(snapshot(0));
    await flush();
    expect(streams.get(STREAM)!.state.name).toBe('live');
    streams.onLiveEvents([orderEvent(2)]);
    expect(sent[1]!.data).toEqual({ stream: STREAM, since: { epoch: 'e1', offset: 0 } });
    expect(transitions).toEqual(['idle(resume) → syncing(resume)', 'syncing(resume) → live', 'live → syncing(resume)']);
  });

  it('queues one more pass when a sync is asked for during a sync, fresh winning over resume, and runs it before resolving', async () => {
    const { streams, sent, transitions, snapshot, flush } = setup();
    streams.subscribe(STREAM, {}, {});
    const sub = streams.get(STREAM)!;
    const first = streams.sync(sub, 'resume');
    const forced = streams.forceSync();
    void streams.sync(sub, 'resume');
    let done = false;
    void forced.then(() => (done = true));
    sent[0]!.answer(snapshot(3));
    await flush();
    expect(sent).toHaveLength(2);
    expect(sent[1]!.data).toEqual({ stream: STREAM });
    expect(done).toBe(false);
    sent[1]!.answer(snapshot(4));
    await first;
    await forced;
    expect(sub.state.name).toBe('live');
        expect(transitions).toEqual([
      'idle(resume) → syncing(resume)',
      'syncing(resume) → syncing(resume, queued resume)',
      'syncing(resume, queued resume) → syncing(resume, queued fresh)',
      // The later resume does not downgrade the queued snapshot.
      'syncing(resume, queued fresh) → syncing(fresh)',
      'syncing(fresh) → live',
    ]);
  });

  it('rests idle when the connection drops, owing a snapshot after a 4009, and takes it on resume', async () => {
    const { streams, sent, snapshot, flush, setOpen } = setup();
    streams.subscribe(STREAM, {}, {});
    sent[0]!.answer(snapshot(5));
    await flush();
    setOpen(false);
    streams.suspendAll(true);
    expect(streams.get(STREAM)!.state).toEqual({ name: 'idle', next: 'fresh' });
    setOpen(true);
    streams.resumeAll();
    expect(sent[1]!.data).toEqual({ stream: STREAM });
  });

  it('keeps a requested snapshot owed when the connection drops before its reply', async () => {
    const { streams, sent, flush, setOpen } = setup();
    streams.subscribe(STREAM, {}, {});
    const sub = streams.get(STREAM)!;
    sent[0]!.answer({ epoch: 'e1', offset: 0, recovered: false, snapshot: { epoch: 'e1', offset: 0, state: { orders: {} } } });
    await flush();
    void streams.forceSync();
    setOpen(false);
    streams.suspendAll(false);
    sent[1]!.fail(new ConnectionLostError('subscribe'));
    await flush();
    expect(sub.state).toEqual({ name: 'idle', next: 'fresh' });
  });

  it('ends released when the last listener leaves: no sync runs again', async () => {
    const { streams, sent, transitions, snapshot, flush } = setup();
    const handle = streams.subscribe(STREAM, {}, {});
    const sub = streams.get(STREAM)!;
    handle.unsubscribe();
    sent[0]!.answer(snapshot(1));
    await flush();
    expect(sub.state.name).toBe('released');
    await streams.sync(sub, 'fresh');
    expect(sent).toHaveLength(1);
    expect(transitions.at(-1)).toBe('syncing(resume) → released');
  });
});
