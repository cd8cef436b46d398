import { onScopeDispose, shallowRef, type ShallowRef } from 'vue';
import { useTradeSync } from '@tradesync/vue';

export type SyncNotice = { readonly kind: 'synchronized'; readonly replayed: number; readonly snapshots: number } | { readonly kind: 'failed'; readonly message: string };

/**
 * What the page says after a reconnect: once the connection was up, went down and came
 * back, and every stream the page holds has synced since (replayed what it missed, or
 * taken a snapshot), "State synchronized"; a stream that could not sync, why. The
 * first connection of the page has nothing to announce. Cleared when the connection
 * drops again.
 */
export function useSyncNotice(): Readonly<ShallowRef<SyncNotice | null>> {
  const client = useTradeSync();
  const notice = shallowRef<SyncNotice | null>(null);
  let lost = false;
  /** The streams still to sync after the reconnect, and what their syncs did. */
  let round: { waiting: Set<string>; replayed: number; snapshots: number } | undefined;

  const offStatus = client.on('status', (status, previous) => {
    if (previous.state === 'connected' && status.state !== 'connected') {
      lost = true;
      round = undefined;
      notice.value = null;
    } else if (status.state === 'connected' && lost) {
      lost = false;
      round = { waiting: new Set(client.streams().map((s) => s.stream)), replayed: 0, snapshots: 0 };
    }
  });
  const offSynced = client.on('synced', (info) => {
    if (!round?.waiting.delete(info.stream)) return;
    if (info.recovered) round.replayed += info.replayed;
    else round.snapshots++;
    if (round.waiting.size === 0) {
      notice.value = { kind: 'synchronized', replayed: round.replayed, snapshots: round.snapshots };
      round = undefined;
    }
  });
  const offFailed = client.on('sync_failed', (info) => {
    round = undefined;
    notice.value = { kind: 'failed', message: `Could not synchronize ${info.stream}: ${info.error.message}` };
  });
  onScopeDispose(() => {
    offStatus();
    offSynced();
    offFailed();
  });
  return notice;
}
