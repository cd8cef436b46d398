import { ErrorCode, type CommandData } from '@tradesync/protocol';
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

/** A command whose engine has not answered by then fails with TIMEOUT (and frees the caller). */
export const COMMAND_TIMEOUT_MS = 15_000;

/** What came of running a command: `timedOut` when the handler had not answered in time. */
export interface CommandRun {
  readonly outcome: CommandOutcome;
  readonly timedOut: boolean;
}

/**
 * Runs a command through its handler, for WebSocket and REST alike: a handler that has
 * not answered within `timeoutMs` yields a failed outcome with TIMEOUT (its late
 * answer is ignored).
 */
export async function runCommand(handler: CommandHandler, command: CommandData, context: CommandContext, timeoutMs: number): Promise<CommandRun> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CommandRun>((resolve) => {
    timer = setTimeout(
      () => resolve({ outcome: { success: false, error: { code: ErrorCode.TIMEOUT, message: `the engine did not answer within ${timeoutMs / 1000} s` } }, timedOut: true }),
      timeoutMs,
    );
  });
  const answered = handler.handle(command, context).then((outcome): CommandRun => ({ outcome, timedOut: false }));
  try {
    return await Promise.race([answered, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
