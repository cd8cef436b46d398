import { getCurrentScope, isRef, onScopeDispose, toValue, watch, type MaybeRefOrGetter } from 'vue';
import type { StreamHandle } from '@tradesync/client';

/**
 * The composables that listen end with the component or effect scope that called them
 * (`onScopeDispose`). Without one nothing would ever end the subscription: refuse, rather
 * than leak a server subscription for the life of the page.
 */
export function requireScope(composable: string): void {
  if (!getCurrentScope()) {
    throw new Error(`${composable} must be called in setup(), a Pinia store or an effectScope(): what it listens to ends with that scope`);
  }
}

/**
 * Holds one subscription, of the stream `name` names, for the current scope: opened now,
 * moved when a ref or getter `name` changes (the new stream first: if its name is refused,
 * the old subscription stays), ended with the scope. `moved` hears of each new handle.
 */
export function holdStream(name: MaybeRefOrGetter<string>, open: (name: string) => StreamHandle, moved?: (handle: StreamHandle) => void): StreamHandle {
  let handle = open(toValue(name));
  if (isRef(name) || typeof name === 'function') {
    watch(
      () => toValue(name),
      (next) => {
        const opened = open(next);
        handle.unsubscribe();
        handle = opened;
        moved?.(opened);
      },
    );
  }
  onScopeDispose(() => handle.unsubscribe());
  return handle;
}
