import { shallowRef, type ShallowRef } from 'vue';
import type { CommandOptions, CommandResult, TradeSyncClient } from '@tradesync/client';
import { useTradeSync } from './plugin.js';

export interface CommandRefs {
  /**
   * Sends a command (`client.command`). Resolves with its result, a refusal included
   * (`success: false` with `error`); rejects only when no answer came (a timeout, a
   * lost or closed connection).
   */
  send(action: string, payload?: Record<string, unknown>, options?: CommandOptions): Promise<CommandResult>;
  /** true while any command sent through `send` waits for its answer. */
  readonly pending: Readonly<ShallowRef<boolean>>;
  /** The result of the command answered last (a gateway answers one connection's commands in order). */
  readonly lastResult: Readonly<ShallowRef<CommandResult | undefined>>;
  /** Why the last command to settle got no answer; cleared when one is answered. */
  readonly error: Readonly<ShallowRef<Error | undefined>>;
}

/** Commands with their progress as refs, for a button that shows "sending…" and the outcome. */
export function useCommand(options: { readonly client?: TradeSyncClient } = {}): CommandRefs {
  const { client = useTradeSync() } = options;
  const pending = shallowRef(false);
  const lastResult = shallowRef<CommandResult | undefined>(undefined);
  const error = shallowRef<Error | undefined>(undefined);
  let inFlight = 0;

  const send = async (action: string, payload: Record<string, unknown> = {}, commandOptions: CommandOptions = {}): Promise<CommandResult> => {
    inFlight++;
    pending.value = true;
    try {
      const result = await client.command(action, payload, commandOptions);
      lastResult.value = result;
      error.value = undefined;
      return result;
    } catch (cause) {
      error.value = cause instanceof Error ? cause : new Error(String(cause));
      throw cause;
    } finally {
      pending.value = --inFlight > 0;
    }
  };
  return { send, pending, lastResult, error };
}
