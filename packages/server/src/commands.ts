import type { CommandData } from '@tradesync/protocol';
import type { Principal } from './auth.js';

/** Who sent a command and for which account. */
export interface CommandContext {
  readonly principal: Principal;
  readonly account: string;
  readonly connectionId?: string;
}

export interface CommandOutcome {
  readonly success: boolean;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

/**
 * Whatever executes commands (the built-in simulator's paper broker, or a user's
 * engine). It answers with the outcome after appending the events the command
 * caused, so those events follow `command_result` on the wire.
 */
export interface CommandHandler {
  readonly actions: readonly string[];
  handle(command: CommandData, context: CommandContext): Promise<CommandOutcome>;
}
