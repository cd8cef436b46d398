import { onScopeDispose, shallowRef, type ShallowRef } from 'vue';
import type { ClientStatus, TradeSyncClient } from '@tradesync/client';
import { useTradeSync } from './plugin.js';
import { requireScope } from './scope.js';

/**
 * The client's status as a ref (`state`, `attempt`, `nextRetryAt`, `lastClose`, …),
 * replaced on every `status` event; `describeStatus(status.value)` gives the words
 * ("Live", "Reconnecting (attempt 3/10)"). Stops listening with the calling scope.
 */
export function useConnectionStatus(options: { readonly client?: TradeSyncClient } = {}): Readonly<ShallowRef<ClientStatus>> {
  requireScope('useConnectionStatus()');
  const { client = useTradeSync() } = options;
  const status = shallowRef(client.status);
  onScopeDispose(client.on('status', (next) => (status.value = next)));
  return status;
}
