import { getCurrentScope } from 'vue';

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
