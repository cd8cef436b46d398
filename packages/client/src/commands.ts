import type { StreamState } from '@tradesync/protocol';
import { TradeSyncError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { Requests } from './requests.js';
import type { Streams } from './streams.js';
import type { OptimisticPatch, StateChangeReason, Subscription } from './subscription.js';

export interface CommandOptions {
  /** The account the command acts on (default: the server's choice for this token). */
  readonly account?: string;
  /** Applied to the stream's visible state at once; confirmed or rolled back later. */
  readonly optimistic?: { readonly stream: string; readonly apply: (state: StreamState) => StreamState };
  /** Reused when retrying, so the server executes the command at most once. */
  readonly commandId?: string;
}

export interface CommandResult {
  readonly success: boolean;
  readonly commandId: string;
  readonly action: string;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

/** The lifecycle of one optimistic command, for toasts and row states. */
export interface CommandUpdate {
  readonly commandId: string;
  readonly action: string;
  readonly phase: 'pending' | 'confirmed' | 'rolled_back';
  readonly error?: { readonly code: string; readonly message: string };
}

/** Time after a confirmed command within which its events are expected. */
const CONFIRM_GRACE_MS = 2000;

export interface CommandsDeps {
  readonly options: ResolvedOptions;
  readonly requests: Pick<Requests, 'request'>;
  readonly streams: Pick<Streams, 'get' | 'notify'>;
  emit(update: CommandUpdate): void;
}

/**
 * Commands, optionally optimistic: the patch shows at once, stays while the command
 * runs, is confirmed by success and the events that follow, and is rolled back on
 * rejection or after `optimisticTimeoutMs` without confirmation.
 */
export class Commands {
  readonly #deps: CommandsDeps;
  #seq = 0;

  constructor(deps: CommandsDeps) {
    this.#deps = deps;
  }

  async command(action: string, payload: Record<string, unknown>, options: CommandOptions): Promise<CommandResult> {
    const { timers, optimisticTimeoutMs } = this.#deps.options;
    const commandId = options.commandId ?? `cmd-${timers.now().toString(36)}-${++this.#seq}-${Math.random().toString(36).slice(2, 6)}`;
    const sub = options.optimistic ? this.#deps.streams.get(options.optimistic.stream) : undefined;
    if (options.optimistic && !sub) throw new TypeError(`optimistic update on ${options.optimistic.stream}, which is not subscribed`);
    let patch: OptimisticPatch | undefined;
    if (sub && options.optimistic) {
      const owned: OptimisticPatch = { id: commandId, apply: options.optimistic.apply, confirmed: false, timer: undefined };
      owned.timer = timers.setTimeout(() => this.#rollback(sub, owned, action, { code: 'TIMEOUT', message: 'no confirmation in time' }), optimisticTimeoutMs);
      patch = owned;
      sub.patches.push(owned);
      this.#deps.streams.notify(sub, 'optimistic');
      this.#deps.emit({ commandId, action, phase: 'pending' });
    }
    let reply;
    try {
      // The command id makes a repeat harmless: the server executes it at most once.
      reply = await this.#deps.requests.request('command', { ...payload, action, command_id: commandId, ...(options.account ? { account: options.account } : {}) });
    } catch (error) {
      if (sub && patch) {
        const message = error instanceof Error ? error.message : String(error);
        this.#rollback(sub, patch, action, { code: error instanceof TradeSyncError ? error.name : 'ERROR', message });
      }
      throw error;
    }
    const result: CommandResult = {
      success: reply.success,
      commandId,
      action,
      ...(reply.result ? { result: reply.result } : {}),
      ...(reply.error ? { error: reply.error } : {}),
    };
    if (sub && patch) {
      if (result.success) {
        patch.confirmed = true;
        timers.clearTimeout(patch.timer);
        // The events the command caused follow its result; drop the patch when they land.
        const owned = patch;
        patch.timer = timers.setTimeout(() => this.#drop(sub, owned, 'confirmed'), CONFIRM_GRACE_MS);
        this.#deps.emit({ commandId, action, phase: 'confirmed' });
      } else {
        this.#rollback(sub, patch, action, result.error ?? { code: 'REJECTED', message: 'command rejected' });
      }
    }
    return result;
  }

  #rollback(sub: Subscription, patch: OptimisticPatch, action: string, error: { code: string; message: string }): void {
    if (!this.#drop(sub, patch, 'rollback')) return;
    this.#deps.emit({ commandId: patch.id, action, phase: 'rolled_back', error });
  }

  #drop(sub: Subscription, patch: OptimisticPatch, reason: StateChangeReason): boolean {
    if (!sub.dropPatch(patch)) return false;
    this.#deps.streams.notify(sub, reason);
    return true;
  }
}
