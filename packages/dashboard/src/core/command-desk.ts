import type { CommandOptions, CommandResult, CommandUpdate } from '@tradesync/client';
import { applyEvent, type OrdersState, type ReducibleEvent, type SignalsState, type StreamState } from '@tradesync/protocol';
import type { StoreApi } from 'zustand/vanilla';
import type { ToastSpec } from './notifications.js';
import type { UiState } from './stores.js';

/**
 * Optimistic execute / reject / cancel. A click shows at once: the row is marked
 * pending through the SDK's optimistic command, which lays the change over the
 * replica until the server confirms it (and the events it caused arrive) or rolls
 * it back — on rejection, or after the SDK's timeout without confirmation. The
 * desk writes no state of its own: the optimistic change is an *event* (the whole
 * entity, marked with `pending_action`) applied by the protocol's one reducer, like
 * any event from the server. What happened to each row goes to the ui store
 * (`commands`), and a rollback says why in a toast.
 */

/** The part of the client the command desk uses (the SDK's `TradeSyncClient` is one). */
export interface CommandSender {
  command(action: string, payload: Record<string, unknown>, options: CommandOptions): Promise<CommandResult>;
}

interface CommandDeskOptions {
  readonly sender: CommandSender;
  readonly ui: StoreApi<UiState>;
  readonly account: () => string;
  /** A stream's visible state now (for labels and the entity to mark). */
  readonly state: <S extends StreamState>(stream: string) => S | undefined;
  /** A toast shown whatever the toast settings (a rollback must be seen). */
  readonly announce: (toast: ToastSpec) => void;
  readonly now: () => number;
}

/** One kind of optimistic command: what to send and how its target shows as pending. */
interface CommandSpec {
  readonly action: string;
  readonly stream: string;
  readonly target: string;
  readonly label: string;
  readonly payload: Record<string, unknown>;
  /** The event that marks the target pending in `state`; undefined when the target is gone. */
  readonly pendingEvent: (state: StreamState) => ReducibleEvent | undefined;
}

interface Pending {
  readonly target: string;
  readonly label: string;
}

export class CommandDesk {
  readonly #options: CommandDeskOptions;
  /** Commands sent from this page, by id, until they are confirmed or rolled back. */
  readonly #pending = new Map<string, Pending>();

  constructor(options: CommandDeskOptions) {
    this.#options = options;
  }

  executeSignal(id: string): void {
    this.#signalCommand('execute_signal', id, 'execute', 'Execute');
  }

  rejectSignal(id: string): void {
    this.#signalCommand('reject_signal', id, 'reject', 'Reject');
  }

  cancelOrder(id: string): void {
    const stream = `orders:${this.#options.account()}`;
    const order = this.#options.state<OrdersState>(stream)?.orders[id];
    this.#send({
      action: 'cancel_order',
      stream,
      target: id,
      label: `Cancel ${order?.symbol ?? id}`,
      payload: { order_id: id },
      pendingEvent: (state) => {
        const o = (state as OrdersState).orders[id];
        return o ? { type: 'order:updated', data: { ...o, pending_action: 'cancel' } } : undefined;
      },
    });
  }

  /** The SDK's `command` event: marks the row, and says so when the command was rolled back. */
  onUpdate(update: CommandUpdate): void {
    const pending = this.#pending.get(update.commandId);
    if (!pending) return;
    const mark = { commandId: update.commandId, action: update.action, target: pending.target, phase: update.phase, message: update.error?.message, at: this.#options.now() };
    this.#options.ui.setState((ui) => ({ commands: { ...ui.commands, [pending.target]: mark } }));
    if (update.phase === 'rolled_back') {
      this.#options.announce({ kind: 'error', title: `${pending.label} failed`, description: update.error?.message ?? 'rolled back' });
    }
    if (update.phase !== 'pending') this.#pending.delete(update.commandId);
  }

  #signalCommand(action: string, id: string, pendingAction: string, verb: string): void {
    const stream = `signals:${this.#options.account()}`;
    const symbol = this.#options.state<SignalsState>(stream)?.signals[id]?.symbol;
    this.#send({
      action,
      stream,
      target: id,
      label: `${verb} ${symbol ?? id}`,
      payload: { signal_id: id },
      pendingEvent: (state) => {
        const signal = (state as SignalsState).signals[id];
        return signal ? { type: 'signal:new', data: { ...signal, pending_action: pendingAction } } : undefined;
      },
    });
  }

  #send(spec: CommandSpec): void {
    const { action, target } = spec;
    // The id is reused by the SDK on a retry, so the server executes the command at most once.
    const commandId = `ui-${action}-${target}-${this.#options.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    this.#pending.set(commandId, { target, label: spec.label });
    const apply = (state: StreamState): StreamState => {
      const event = spec.pendingEvent(state);
      return event ? applyEvent(state, event) : state;
    };
    this.#options.sender.command(action, spec.payload, { account: this.#options.account(), commandId, optimistic: { stream: spec.stream, apply } }).catch(() => {
      // Not swallowed: the rollback and its reason arrive through the `command` event (onUpdate).
    });
  }
}
