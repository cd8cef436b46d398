import { z } from 'zod';
import type { CommandData } from '@tradesync/protocol';
import { CommandError, CommandErrorCode } from './codes.js';

/** The actions the simulator answers. */
export const SIMULATOR_ACTIONS = ['execute_signal', 'reject_signal', 'place_order', 'cancel_order', 'close_position'] as const;
export type SimulatorAction = (typeof SIMULATOR_ACTIONS)[number];

const Id = z.string().min(1).max(200);
const DecimalInput = z.union([z.string().regex(/^\d+(\.\d+)?$/), z.number().positive().finite().transform((n) => String(n))]);

/** The fields of each action, validated at the edge (the command's own fields, or under `params`). */
export const COMMAND_SCHEMAS = {
  execute_signal: z.looseObject({ signal_id: Id }),
  reject_signal: z.looseObject({ signal_id: Id, reason: z.string().max(500).optional() }),
  place_order: z.looseObject({
    symbol: z.string().min(1).max(32),
    side: z.enum(['buy', 'sell']),
    order_type: z.enum(['market', 'limit']).default('market'),
    quantity: DecimalInput,
    price: DecimalInput.nullish(),
  }),
  cancel_order: z.looseObject({ order_id: Id }),
  close_position: z.looseObject({ symbol: z.string().min(1).max(32) }),
} as const satisfies Record<SimulatorAction, z.ZodType>;

type CommandFields<A extends SimulatorAction> = z.infer<(typeof COMMAND_SCHEMAS)[A]>;
export type ParsedCommand = { [A in SimulatorAction]: { action: A; fields: CommandFields<A> } }[SimulatorAction];

/** The same shape as the server's CommandOutcome (kept structural so the simulator does not depend on the server). */
export interface CommandOutcome {
  readonly success: boolean;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

/** Runs one validated command for an account, appending its events before it resolves. */
export type CommandExecutor = (account: string, command: ParsedCommand) => Promise<Record<string, unknown>>;

export function parseCommand(command: CommandData): ParsedCommand {
  const action = command.action as SimulatorAction;
  if (!(SIMULATOR_ACTIONS as readonly string[]).includes(action)) {
    throw new CommandError(CommandErrorCode.UNKNOWN_ACTION, `unknown action "${command.action}"; known: ${SIMULATOR_ACTIONS.join(', ')}`);
  }
  const params = typeof command.params === 'object' && command.params !== null ? (command.params as Record<string, unknown>) : {};
  const raw: Record<string, unknown> = { ...params, ...command };
  // `id` is accepted for the signal id, as the dashboard's signal cards carry it.
  if ((action === 'execute_signal' || action === 'reject_signal') && raw.signal_id === undefined && typeof raw.id === 'string') raw.signal_id = raw.id;
  const parsed = COMMAND_SCHEMAS[action].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CommandError(CommandErrorCode.INVALID_COMMAND, `${action}: ${issue ? `${issue.path.join('.') || 'command'}: ${issue.message}` : 'invalid fields'}`);
  }
  return { action, fields: parsed.data } as ParsedCommand;
}

const REMEMBERED_COMMANDS = 10_000;

/**
 * The simulator's CommandHandler for the gateway: validates, runs and answers each
 * command, and remembers outcomes by `command_id` so a retried command (same id)
 * gets the same answer without acting twice — even while the first is still running.
 */
export class SimulatorCommandHandler {
  readonly actions: readonly string[] = SIMULATOR_ACTIONS;
  readonly #outcomes = new Map<string, Promise<CommandOutcome>>();

  constructor(private readonly execute: CommandExecutor) {}

  handle(command: CommandData, context: { readonly account: string }): Promise<CommandOutcome> {
    const id = command.command_id;
    if (id === undefined || id === '') return this.#run(command, context.account);
    const key = `${context.account}\u0000${id}`;
    const known = this.#outcomes.get(key);
    if (known) return known;
    const outcome = this.#run(command, context.account);
    this.#outcomes.set(key, outcome);
    // A crash (not a refusal) is not an outcome worth repeating: let a retry run again.
    outcome.catch(() => this.#outcomes.delete(key));
    if (this.#outcomes.size > REMEMBERED_COMMANDS) this.#outcomes.delete(this.#outcomes.keys().next().value!);
    return outcome;
  }

  async #run(command: CommandData, account: string): Promise<CommandOutcome> {
    try {
      const parsed = parseCommand(command);
      const result = await this.execute(account, parsed);
      return { success: true, result };
    } catch (err) {
      if (err instanceof CommandError) return { success: false, error: { code: err.code, message: err.message } };
      throw err;
    }
  }
}
