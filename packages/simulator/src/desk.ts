/**
 * One account's trading desk (see the class below). Longer than ~300 lines on purpose:
 * a signal's whole life, from detection to execution, rejection or expiry, and the
 * strategy instance that acts on it, read in one place.
 */
import type { EventInput } from '@tradesync/protocol';
import { CommandError, CommandErrorCode } from './codes.js';
import { iso } from './clock.js';
import type { PaperBroker } from './broker.js';
import { big, dec, min, toStep, type Big } from './money.js';
import type { Detection } from './patterns.js';
import { signalSide } from './patterns.js';
import { MAX_HEAT, campaignOf, equity, heatOf } from './portfolio.js';
import type { Rng } from './rng.js';
import { instanceEntity, newInstance, transition, type InstanceRecord } from './strategy.js';
import type { SymbolSpec } from './symbols.js';

export interface DeskOptions {
  /** Chance that the desk's own autopilot executes a new signal (0 leaves every signal to the user). */
  readonly autoExecute: number;
  /** Steps a pending signal waits before it expires. */
  readonly signalTtlSteps: number;
  /** Steps per trading session; a new session brings new strategy instances. */
  readonly sessionSteps: number;
  /** Fraction of equity a signal risks between entry and stop. */
  readonly riskPerTrade: Big;
  /** Reward-to-risk multiple of the target. */
  readonly rewardRisk: Big;
  /** Simulated milliseconds per step (for `expires_at`). */
  readonly stepMs: number;
}

export interface SignalRecord {
  readonly id: string;
  readonly symbol: string;
  readonly side: 'buy' | 'sell';
  status: 'pending' | 'executed' | 'rejected' | 'expired';
  readonly entity: Record<string, unknown>;
  readonly instanceId: string;
  readonly stop: Big;
  readonly target: Big;
  readonly quantity: Big;
  readonly expiresStep: number;
  readonly autoStep: number | null;
}

/** The stop and target of the position an instance holds. */
interface Plan {
  readonly stop: Big;
  readonly target: Big;
  readonly side: 'long' | 'short';
}

const KEPT_SIGNALS = 500;

/**
 * One account's trading desk: its strategy instances (one per session and symbol),
 * its signals and the autopilot that acts on them. It drives the instances through
 * the transition table in strategy.ts and reads the broker for what happened to
 * their orders and positions.
 */
export class Desk {
  sessionNo = 1;
  readonly #instances = new Map<string, InstanceRecord>();
  readonly #plans = new Map<string, Plan>();
  readonly #signals = new Map<string, SignalRecord>();
  #signalSeq = 0;

  constructor(
    readonly account: string,
    private readonly runId: string,
    private readonly broker: PaperBroker,
    private readonly specs: readonly SymbolSpec[],
    private readonly rng: Rng,
    private readonly options: DeskOptions,
  ) {}

  get sessionId(): string {
    return `${this.account}-${this.runId}-s${this.sessionNo}`;
  }

  instances(): IterableIterator<InstanceRecord> {
    return this.#instances.values();
  }

  signal(id: string): SignalRecord | undefined {
    return this.#signals.get(id);
  }

  #stream(kind: string): string {
    return `${kind}:${this.account}`;
  }

  /** The first instances and the starting balance; `full_update` replaces instances left from an earlier run. */
  start(nowMs: number, out: EventInput[]): void {
    const now = iso(nowMs);
    for (const spec of this.specs) {
      const instance = newInstance(this.sessionId, spec.symbol, now);
      this.#instances.set(instance.instance_id, instance);
    }
    out.push({ stream: this.#stream('state_machines'), type: 'full_update', data: { instances: [...this.#instances.values()].map(instanceEntity) } });
    this.broker.account(this.account).pushBalance(out, true);
    out.push({ stream: this.#stream('portfolio'), type: 'campaign:updated', data: campaignOf(this.broker.account(this.account), this.sessionId) });
  }

  #current(symbol: string): InstanceRecord | undefined {
    for (const i of this.#instances.values()) if (i.symbol === symbol && !i.retiring) return i;
    return undefined;
  }

  /** A pattern on the market: show it, and turn it into a signal when an instance is free to trade it. */
  onPattern(detection: Detection, patternId: string, step: number, nowMs: number, out: EventInput[]): void {
    const now = iso(nowMs);
    out.push({ stream: this.#stream('signals'), type: 'pattern_detected', data: { id: patternId, ...detection, detected_at: now } });
    const side = signalSide(detection.pattern_type);
    const instance = this.#current(detection.symbol);
    const spec = this.specs.find((s) => s.symbol === detection.symbol);
    const entry = this.broker.mark(detection.symbol);
    if (!side || !instance || instance.state !== 'MONITORING' || !spec || !entry) return;
    const account = this.broker.account(this.account);
    const accountEquity = equity(account);
    if (heatOf(account.positions.values(), accountEquity).gte(MAX_HEAT)) return;

    const distance = entry.times(spec.stopFraction);
    const stop = toStep(side === 'buy' ? entry.minus(distance) : entry.plus(distance), spec.tick);
    const risk = entry.minus(stop).abs();
    if (risk.lte(0)) return;
    const target = toStep(side === 'buy' ? entry.plus(risk.times(this.options.rewardRisk)) : entry.minus(risk.times(this.options.rewardRisk)), spec.tick);
    // Size by risk, then cap so one entry never takes more than a fifth of the free margin.
    const byRisk = accountEquity.times(this.options.riskPerTrade).div(risk);
    const byMargin = account.available().times('0.2').times(spec.leverage).div(entry);
    const quantity = toStep(min(byRisk, byMargin), spec.lot, 'down');
    if (quantity.lte(0) || target.lte(0)) return;

    const id = `sig-${this.account}-${this.runId}-${++this.#signalSeq}`;
    const auto = this.rng.chance(this.options.autoExecute) ? step + this.rng.int(3, 8) : null;
    const entity = {
      id,
      symbol: detection.symbol,
      pattern_type: detection.pattern_type,
      confidence_score: detection.confidence_score,
      status: 'pending',
      session_id: this.sessionId,
      created_at: now,
      side,
      entry_price: dec(entry),
      stop_loss: dec(stop),
      target_price: dec(target),
      quantity: dec(quantity),
      risk_reward: this.options.rewardRisk.toFixed(2),
      pattern_id: patternId,
      phase: detection.phase,
      instance_id: instance.instance_id,
      campaign_id: `${this.sessionId}-campaign`,
      expires_at: iso(nowMs + this.options.signalTtlSteps * this.options.stepMs),
      account: this.account,
    };
    this.#signals.set(id, { id, symbol: detection.symbol, side, status: 'pending', entity, instanceId: instance.instance_id, stop, target, quantity, expiresStep: step + this.options.signalTtlSteps, autoStep: auto });
    this.#prune();
    out.push({ stream: this.#stream('signals'), type: 'signal:new', data: entity });
    instance.signal_id = id;
    transition(instance, 'SIGNAL_DETECTED', now, this.#stream('state_machines'), out, { reason: `${detection.pattern_type} detected`, signal_id: id, progress: '0.00' });
  }

  /** Executes a pending signal: a market order for its quantity. Throws CommandError when it cannot. */
  execute(signalId: string, nowMs: number, out: EventInput[]): { signal_id: string; order_id: string } {
    const signal = this.#pending(signalId);
    const instance = this.#instances.get(signal.instanceId);
    const order = this.broker.place(
      this.account,
      {
        symbol: signal.symbol,
        side: signal.side,
        order_type: 'market',
        quantity: signal.quantity,
        session_id: this.sessionId,
        signal_id: signal.id,
        instance_id: signal.instanceId,
        stop_price: signal.stop,
        reason: 'signal entry',
      },
      nowMs,
      out,
    );
    signal.status = 'executed';
    const now = iso(nowMs);
    out.push({ stream: this.#stream('signals'), type: 'signal:executed', data: { id: signal.id, status: 'executed', executed_at: now, order_id: order.order_id } });
    if (instance && instance.state === 'SIGNAL_DETECTED' && instance.signal_id === signal.id) {
      instance.order_id = order.order_id;
      this.#plans.set(instance.instance_id, { stop: signal.stop, target: signal.target, side: signal.side === 'buy' ? 'long' : 'short' });
      transition(instance, 'ENTRY_PENDING', now, this.#stream('state_machines'), out, { reason: 'entry order placed', order_id: order.order_id });
    }
    return { signal_id: signal.id, order_id: order.order_id };
  }

  /** Rejects (or, with `expired`, expires) a pending signal and frees its instance. */
  reject(signalId: string, reason: string, nowMs: number, out: EventInput[], expired = false): { signal_id: string } {
    const signal = this.#pending(signalId);
    signal.status = expired ? 'expired' : 'rejected';
    const now = iso(nowMs);
    out.push({ stream: this.#stream('signals'), type: 'signal:rejected', data: { id: signal.id, status: signal.status, reason, rejected_at: now } });
    const instance = this.#instances.get(signal.instanceId);
    if (instance && instance.state === 'SIGNAL_DETECTED' && instance.signal_id === signal.id) {
      transition(instance, 'MONITORING', now, this.#stream('state_machines'), out, { reason: expired ? 'signal expired' : `signal rejected: ${reason}` });
      this.#afterMonitoring(instance, nowMs, out);
    }
    return { signal_id: signal.id };
  }

  /** Closes a position at the market; the instance holding it starts exiting. */
  closePosition(symbol: string, nowMs: number, out: EventInput[]): { order_id: string } {
    const order = this.broker.closePosition(this.account, symbol, nowMs, out, 'close requested');
    const instance = this.#current(symbol) ?? [...this.#instances.values()].find((i) => i.symbol === symbol);
    if (instance && instance.state === 'POSITION_OPEN') {
      instance.order_id = order.order_id;
      transition(instance, 'EXITING', iso(nowMs), this.#stream('state_machines'), out, { reason: 'close requested', order_id: order.order_id });
    }
    return { order_id: order.order_id };
  }

  #pending(signalId: string): SignalRecord {
    const signal = this.#signals.get(signalId);
    if (!signal) throw new CommandError(CommandErrorCode.UNKNOWN_SIGNAL, `unknown signal "${signalId}" (it may be from an earlier run)`);
    if (signal.status === 'executed') throw new CommandError(CommandErrorCode.SIGNAL_ALREADY_EXECUTED, `signal ${signalId} was executed already`);
    if (signal.status !== 'pending') throw new CommandError(CommandErrorCode.SIGNAL_NOT_PENDING, `signal ${signalId} is ${signal.status}`);
    return signal;
  }

  /** Once per step: the autopilot, expiries, instances following their orders and positions, sessions. */
  tick(step: number, nowMs: number, out: EventInput[]): void {
    for (const signal of [...this.#signals.values()]) {
      if (signal.status !== 'pending') continue;
      if (signal.autoStep !== null && step >= signal.autoStep) {
        try {
          this.execute(signal.id, nowMs, out);
        } catch (err) {
          if (!(err instanceof CommandError)) throw err;
          this.reject(signal.id, `autopilot could not execute: ${err.message}`, nowMs, out);
        }
      } else if (step >= signal.expiresStep) {
        this.reject(signal.id, 'expired', nowMs, out, true);
      }
    }
    this.sync(nowMs, out);
    if (step > 0 && step % this.options.sessionSteps === 0) this.#newSession(nowMs, out);
  }

  /** Moves every instance to where its orders and position say it is. */
  sync(nowMs: number, out: EventInput[]): void {
    const now = iso(nowMs);
    const stream = this.#stream('state_machines');
    const account = this.broker.account(this.account);
    for (const instance of [...this.#instances.values()]) {
      const position = account.positions.get(instance.symbol);
      switch (instance.state) {
        case 'MONITORING':
        case 'SIGNAL_DETECTED':
          break;
        case 'ENTRY_PENDING':
          if (instance.order_id && this.broker.isOpen(this.account, instance.order_id)) break;
          if (position) {
            transition(instance, 'POSITION_OPEN', now, stream, out, { reason: 'entry filled', quantity: dec(position.quantity), avg_price: dec(position.avg_price), progress: '0.00' });
          } else {
            transition(instance, 'MONITORING', now, stream, out, { reason: 'entry order ended unfilled' });
            this.#afterMonitoring(instance, nowMs, out);
          }
          break;
        case 'POSITION_OPEN': {
          if (!position) {
            transition(instance, 'EXITING', now, stream, out, { reason: 'position closed outside the strategy' });
            transition(instance, 'MONITORING', now, stream, out, { reason: 'position closed' });
            this.#afterMonitoring(instance, nowMs, out);
            break;
          }
          const plan = this.#plans.get(instance.instance_id);
          if (!plan || plan.side !== position.side) break;
          const mark = position.mark;
          const long = plan.side === 'long';
          const hitStop = long ? mark.lte(plan.stop) : mark.gte(plan.stop);
          const hitTarget = long ? mark.gte(plan.target) : mark.lte(plan.target);
          if (!hitStop && !hitTarget) break;
          try {
            const order = this.broker.closePosition(this.account, instance.symbol, nowMs, out, hitStop ? 'stop loss' : 'take profit');
            instance.order_id = order.order_id;
          } catch (err) {
            if (!(err instanceof CommandError)) throw err;
            // Something else is closing it already: follow that.
            instance.order_id = null;
          }
          const progress = this.#progress(plan, position.avg_price, mark);
          transition(instance, 'EXITING', now, stream, out, { reason: hitStop ? 'stop loss hit' : 'target reached', progress });
          break;
        }
        case 'EXITING':
          if (!position) {
            transition(instance, 'MONITORING', now, stream, out, { reason: 'position closed' });
            this.#afterMonitoring(instance, nowMs, out);
          } else if (!this.#closing(instance.symbol)) {
            transition(instance, 'POSITION_OPEN', now, stream, out, { reason: 'exit order ended before the position closed' });
          }
          break;
      }
    }
  }

  #closing(symbol: string): boolean {
    for (const o of this.broker.account(this.account).orders.values()) if (o.symbol === symbol && o.reduce_only) return true;
    return false;
  }

  /** Percent of the way from entry to target (negative toward the stop). */
  #progress(plan: Plan, entry: Big, mark: Big): string {
    const span = plan.target.minus(entry);
    if (span.eq(0)) return '0.00';
    return mark.minus(entry).div(span).times(100).toFixed(2);
  }

  /** An instance of an old session leaves once it is back to MONITORING; its successor takes over. */
  #afterMonitoring(instance: InstanceRecord, nowMs: number, out: EventInput[]): void {
    this.#plans.delete(instance.instance_id);
    if (!instance.retiring) return;
    this.#instances.delete(instance.instance_id);
    out.push({ stream: this.#stream('state_machines'), type: 'instance_removed', data: { instance_id: instance.instance_id, reason: 'session ended' } });
    this.#addInstance(instance.symbol, nowMs, out);
  }

  #addInstance(symbol: string, nowMs: number, out: EventInput[]): void {
    const fresh = newInstance(this.sessionId, symbol, iso(nowMs));
    if (this.#instances.has(fresh.instance_id)) return;
    this.#instances.set(fresh.instance_id, fresh);
    out.push({ stream: this.#stream('state_machines'), type: 'instance_added', data: instanceEntity(fresh) });
  }

  #newSession(nowMs: number, out: EventInput[]): void {
    const account = this.broker.account(this.account);
    const old = this.sessionId;
    const oldCampaign = campaignOf(account, old);
    out.push({ stream: this.#stream('portfolio'), type: 'campaign:updated', data: { ...oldCampaign, status: oldCampaign.positions_count === 0 ? 'COMPLETED' : 'CLOSING' } });
    this.sessionNo++;
    for (const instance of [...this.#instances.values()]) {
      instance.retiring = true;
      if (instance.state === 'MONITORING') this.#afterMonitoring(instance, nowMs, out);
    }
  }

  /** Keeps memory bounded: the oldest settled signals go first. */
  #prune(): void {
    if (this.#signals.size <= KEPT_SIGNALS) return;
    for (const [id, s] of this.#signals) {
      if (this.#signals.size <= KEPT_SIGNALS) break;
      if (s.status !== 'pending') this.#signals.delete(id);
    }
  }
}

export const DEFAULT_DESK_OPTIONS: DeskOptions = {
  autoExecute: 0.6,
  signalTtlSteps: 90,
  sessionSteps: 1800,
  riskPerTrade: big('0.005'),
  rewardRisk: big(2),
  stepMs: 1000,
};
