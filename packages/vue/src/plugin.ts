import { hasInjectionContext, inject, type App, type InjectionKey } from 'vue';
import { TradeSyncClient, type ClientOptions } from '@tradesync/client';

/** Where the app's client is provided; `inject(TRADESYNC_CLIENT)` is what `useTradeSync()` does. */
export const TRADESYNC_CLIENT: InjectionKey<TradeSyncClient> = Symbol('tradesync client');

/** What `createTradeSync` returns: a Vue plugin, and the client it provides. */
export interface TradeSyncPlugin {
  /** The one client of the app (hand it to `tradeSyncPinia`, or to code outside Vue). */
  readonly client: TradeSyncClient;
  install(app: App): void;
}

/**
 * A Vue plugin that provides one client to the whole app, so every component shares one
 * socket. Given options, the plugin creates the client and owns it: it disconnects when
 * the last app it was installed in unmounts. Given a client (say `getClient(url)`, shared
 * with code outside Vue), the caller keeps owning it.
 */
export function createTradeSync(source: TradeSyncClient | ClientOptions): TradeSyncPlugin {
  // Told apart by shape, not `instanceof`: a bundle may hold two copies of the SDK.
  const given = typeof (source as Partial<TradeSyncClient>).subscribe === 'function';
  const client = given ? (source as TradeSyncClient) : new TradeSyncClient(source as ClientOptions);
  let apps = 0;
  return {
    client,
    install(app) {
      app.provide(TRADESYNC_CLIENT, client);
      apps++;
      app.onUnmount(() => {
        if (--apps === 0 && !given) client.disconnect();
      });
    },
  };
}

/** The client the `createTradeSync` plugin provides; call it in `setup()`, a Pinia store or `app.runWithContext()`. */
export function useTradeSync(): TradeSyncClient {
  if (!hasInjectionContext()) {
    throw new Error('useTradeSync() was called outside setup(): it reads the client of the app, so call it in setup(), a Pinia store or app.runWithContext(), or pass the client to the composable ({ client })');
  }
  const client = inject(TRADESYNC_CLIENT, null);
  if (!client) throw new Error('useTradeSync() found no TradeSync client in this app: install one with app.use(createTradeSync({ url })) before mounting');
  return client;
}
