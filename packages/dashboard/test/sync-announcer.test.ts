import { describe, expect, it } from 'vitest';
import type { ClientStatus } from '@tradesync/client';
import type { ToastSpec } from '../src/core/notifications.js';
import { SyncAnnouncer, SYNCHRONIZED } from '../src/core/sync-announcer.js';
import { status, testStores } from './support/fakes.js';

function harness(initial: ClientStatus['state'] = 'connected', streams = ['orders:demo', 'signals:demo']) {
  const stores = testStores();
  let current = status(initial);
  let now = 5000;
  const toasts: ToastSpec[] = [];
  let resolveForce: (() => void) | undefined;
  let rejectForce: ((e: Error) => void) | undefined;
  let forced = 0;
  const forcedStreams: Array<readonly string[] | undefined> = [];
  const sync = new SyncAnnouncer({
    connection: stores.connection,
    streams: () => streams,
    status: () => current,
    announce: (t) => toasts.push(t),
    forceSync: (named) => {
      forced++;
      forcedStreams.push(named);
      return new Promise<void>((res, rej) => {
        resolveForce = res;
        rejectForce = rej;
      });
    },
    now: () => now,
  });
  const move = (state: ClientStatus['state'], patch: Partial<ClientStatus> = {}) => {
    const previous = current;
    current = status(state, patch);
    sync.onStatus(current, previous);
  };
  const connection = () => stores.connection.getState();
  return {
    sync,
    move,
    connection,
    toasts,
    forced: () => forced,
    forcedStreams,
    resolveForce: () => resolveForce?.(),
    rejectForce: () => rejectForce?.(new Error('no')),
    setNow: (t: number) => (now = t),
  };
}

const failure = (stream: string, message = 'request timed out') => ({ stream, error: new Error(message), attempts: 3 });

describe('the sync announcer', () => {
  it('says "State synchronized" once after a reconnect, when the last stream has resynced', () => {
    const h = harness();
    h.move('reconnecting', { attempt: 1 });
    h.move('connected');
    h.sync.onSynced('orders:demo');
    expect(h.toasts).toEqual([]);
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([SYNCHRONIZED]);
    expect(h.connection().lastSyncedAt).toBe(5000);
    // Later syncs (live resyncs of one stream) are not announced again.
    h.sync.onSynced('orders:demo');
    expect(h.toasts).toHaveLength(1);
  });

  it('announces nothing for the page’s first connection', () => {
    const h = harness('connecting');
    h.move('connected');
    h.sync.onSynced('orders:demo');
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([]);
    // …but the next reconnect is announced.
    h.move('reconnecting');
    h.move('connecting');
    h.move('connected');
    h.sync.onSynced('orders:demo');
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([SYNCHRONIZED]);
  });

  it('puts up a banner naming every stream that failed to sync, and takes it down as they sync', () => {
    const h = harness();
    h.sync.onSyncFailed(failure('orders:demo'));
    h.sync.onSyncFailed(failure('signals:demo', 'boom'));
    h.sync.onSyncFailed(failure('orders:demo', 'boom'));
    expect(h.connection().syncFailure).toEqual({ streams: ['orders:demo', 'signals:demo'], message: 'Could not synchronize orders:demo, signals:demo: boom' });
    h.sync.onSynced('orders:demo');
    expect(h.connection().syncFailure?.streams).toEqual(['signals:demo']);
    h.sync.onSynced('signals:demo');
    expect(h.connection().syncFailure).toBeNull();
  });

  it('ends a round with a failure without announcing it: the banner says what happened', () => {
    const h = harness();
    h.move('reconnecting');
    h.move('connected');
    h.sync.onSyncFailed(failure('orders:demo'));
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([]);
    expect(h.connection().syncFailure?.streams).toEqual(['orders:demo']);
  });

  it('after a round ended by a failure, Force Sync asks again only for the failed streams, then clears the banner and announces', () => {
    const h = harness();
    h.move('reconnecting');
    h.move('connected');
    h.sync.onSynced('orders:demo');
    h.sync.onSyncFailed(failure('signals:demo'));
    // The round has ended; Force Sync starts a new one for what failed: orders:demo is current.
    h.sync.forceSync();
    expect(h.forcedStreams).toEqual([['signals:demo']]);
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([SYNCHRONIZED]);
    expect(h.connection()).toMatchObject({ syncFailure: null, forceSyncing: false });
  });

  it('without a failure, Force Sync asks for every stream and announces when the last is back', () => {
    const h = harness();
    h.sync.forceSync();
    expect(h.forcedStreams).toEqual([undefined]);
    h.sync.onSynced('signals:demo');
    expect(h.toasts).toEqual([]);
    h.sync.onSynced('orders:demo');
    expect(h.toasts).toEqual([SYNCHRONIZED]);
  });

  it('shows Force Sync as busy until the client’s force sync settles, success or not', async () => {
    const h = harness();
    h.sync.forceSync();
    expect(h.forced()).toBe(1);
    expect(h.connection().forceSyncing).toBe(true);
    h.resolveForce();
    await Promise.resolve();
    expect(h.connection().forceSyncing).toBe(false);
    h.sync.forceSync();
    h.rejectForce();
    await new Promise((r) => setTimeout(r, 0));
    expect(h.connection().forceSyncing).toBe(false);
  });

  it('clears the banner when told (the page left the account)', () => {
    const h = harness();
    h.sync.onSyncFailed(failure('orders:demo'));
    h.sync.clearFailure();
    expect(h.connection().syncFailure).toBeNull();
  });

  it('ticks the clock once a second (ages and the status countdown read it)', () => {
    const h = harness();
    h.setNow(9000);
    h.sync.tick();
    expect(h.connection().now).toBe(9000);
  });
});
