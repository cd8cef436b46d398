/**
 * The built-in trading engine. Longer than ~300 lines on purpose: one step of the
 * simulation (market, indicators, patterns, desks, broker, reconciliation) runs in a
 * fixed order that the determinism tests pin, and that order reads best in one file.
 */
import type { EventInput } from '@tradesync/protocol';
import { PaperBroker } from './broker.js';
import { SimClock, WallClock, iso, type Clock } from './clock.js';
import { CommandError, CommandErrorCode } from './codes.js';
import { SimulatorCommandHandler, type ParsedCommand } from './commands.js';
import { DEFAULT_DESK_OPTIONS, Desk, type DeskOptions } from './desk.js';
import { IndicatorSet, INDICATOR_NAMES } from './indicators.js';
import { MarketModel } from './market.js';
import { big, decimalsOf } from './money.js';
import { PatternDetector } from './patterns.js';
import { campaignOf, ChangeFilter, portfolioTotals } from './portfolio.js';
import { PaperBrokerAdapter, Reconciler } from './reconcile.js';
import { Rng } from './rng.js';
import type { EventSink, StateReader } from './sink.js';
import { DEFAULT_SYMBOLS, type SymbolSpec } from './symbols.js';

export interface AccountSpec {
  readonly id: string;
  /** Starting cash, a decimal string in USD. */
  readonly deposit: string;
}

export interface SimulatorOptions {
  /** Where events go: a Gateway, or an EventRecorder in tests. */
  readonly sink: EventSink;
  /** The gateway's materialized state, for reconciliation; without it reconciliation is off. */
  readonly state?: StateReader;
  /** @default 1 */
  readonly seed?: number;
  /** @default demo (100000 USD) and demo-2 (25000 USD) */
  readonly accounts?: readonly AccountSpec[];
  /** @default BTC-USD, ETH-USD, SOL-USD, AAPL, MSFT */
  readonly symbols?: readonly SymbolSpec[];
  /**
   * Where timestamps come from. A SimClock (start + n × dt) makes a run fully
   * replayable; the live default is wall time.
   * @default new WallClock()
   */
  readonly clock?: Clock;
  /**
   * Events per second over all streams for `run()`; `Infinity` runs flat out (load tests).
   * @default 15
   */
  readonly rate?: number;
  /** Mark-to-market (positions, totals, campaigns) is republished every this many steps. @default 5 */
  readonly markEverySteps?: number;
  /** Reconciliation with the broker runs every this many steps (0: never). @default 30 */
  readonly reconcileEverySteps?: number;
  /**
   * Every this many steps, the next order or position close report from the broker is
   * lost on its way to the gateway (0: never), as real broker feeds sometimes drop one; the
   * next reconciliation finds the drift, raises `reconciliation_mismatch` and repairs
   * it. Off by default so published events stay a complete record; `tradesync serve`
   * turns it on to show reconciliation at work.
   * @default 0
   */
  readonly loseReportEverySteps?: number;
  readonly desk?: Partial<DeskOptions>;
  /** Told about a step that failed (e.g. the gateway refused or is gone); the run goes on. */
  readonly onError?: (error: unknown) => void;
}

export const DEFAULT_ACCOUNTS: readonly AccountSpec[] = [
  { id: 'demo', deposit: '100000' },
  { id: 'demo-2', deposit: '25000' },
];
export const DEFAULT_RATE = 15;

/** Steps run back to back before their events are published together, at full speed. */
const STEPS_PER_BURST = 20;
/** Held events that make a publish happen at once, whatever the burst. */
const HELD_EVENTS = 2000;

/**
 * The built-in trading engine. Everything happens in `step()`: one move of the
 * simulated market and all that follows from it (indicators, patterns, signals,
 * fills, strategy transitions, marks, alerts, reconciliation). A step is a pure
 * function of the seed, the step number and the commands that came before it, so
 * with a SimClock the same seed gives the same events. `run()` only paces steps to
 * the configured rate; commands and steps run one at a time, in arrival order.
 */
export class Simulator {
  readonly broker: PaperBroker;
  readonly desks = new Map<string, Desk>();
  readonly commands: SimulatorCommandHandler;
  readonly clock: Clock;
  readonly symbols: readonly SymbolSpec[];
  readonly runId: string;
  readonly #sink: EventSink;
  readonly #market: MarketModel;
  readonly #indicators = new Map<string, IndicatorSet>();
  readonly #detectors = new Map<string, PatternDetector>();
  readonly #filter = new ChangeFilter();
  readonly #reconciler: Reconciler | undefined;
  readonly #options: Required<Pick<SimulatorOptions, 'rate' | 'markEverySteps' | 'reconcileEverySteps' | 'loseReportEverySteps'>> & Pick<SimulatorOptions, 'onError'>;
  /** Events of steps run but not yet published (see #pace). */
  #held: EventInput[] = [];
  #steps = 0;
  /** A broker report is due to be lost: the next close report that comes is dropped. */
  #loseArmed = false;
  #patternSeq = 0;
  #eventsPublished = 0;
  #started = false;
  /** Steps and commands run one after another through this chain. */
  #queue: Promise<unknown> = Promise.resolve();
  #running = false;
  #loop: Promise<void> | undefined;

  constructor(options: SimulatorOptions) {
    const seed = options.seed ?? 1;
    const rng = new Rng(seed);
    this.#sink = options.sink;
    this.clock = options.clock ?? new WallClock();
    this.symbols = options.symbols ?? DEFAULT_SYMBOLS;
    // Ids carry the run, so a restarted simulator never reuses an id a gateway still holds.
    this.runId = Math.floor(this.clock.now() / 1000).toString(36);
    this.#options = {
      rate: options.rate ?? DEFAULT_RATE,
      markEverySteps: Math.max(1, options.markEverySteps ?? 5),
      reconcileEverySteps: options.reconcileEverySteps ?? 30,
      loseReportEverySteps: options.loseReportEverySteps ?? 0,
      onError: options.onError,
    };
    this.#market = new MarketModel(this.symbols, rng.fork('market'));
    this.broker = new PaperBroker(this.symbols, rng.fork('fills'), this.runId);
    const stepMs = this.clock instanceof SimClock ? this.clock.dtMs : 1000;
    const deskOptions: DeskOptions = { ...DEFAULT_DESK_OPTIONS, stepMs, ...options.desk };
    for (const account of options.accounts ?? DEFAULT_ACCOUNTS) {
      this.broker.openAccount(account.id, big(account.deposit));
      this.desks.set(account.id, new Desk(account.id, this.runId, this.broker, this.symbols, rng.fork(`desk:${account.id}`), deskOptions));
    }
    for (const spec of this.symbols) {
      this.#indicators.set(spec.symbol, new IndicatorSet(decimalsOf(spec.tick)));
      this.#detectors.set(spec.symbol, new PatternDetector(spec.symbol, rng.fork(`patterns:${spec.symbol}`)));
    }
    this.#reconciler = options.state ? new Reconciler(new PaperBrokerAdapter(this.broker), options.state, this.runId) : undefined;
    this.commands = new SimulatorCommandHandler((account, command) => this.#serial(() => this.#command(account, command)));
  }

  get steps(): number {
    return this.#steps;
  }

  get eventsPublished(): number {
    return this.#eventsPublished;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Publishes the opening state (instances, balances, campaigns) and reconciles with what the gateway already holds. */
  start(): Promise<number> {
    return this.#serial(() => this.#start());
  }

  /** One step; resolves to the number of events it published. */
  step(): Promise<number> {
    return this.#serial(async () => {
      if (!this.#started) await this.#start();
      return this.#step();
    });
  }

  /** Runs steps paced to `rate` events/s until `stop()`. */
  run(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#pace();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    // A burst cut short by an error may still hold events.
    if (this.#held.length > 0) await this.#serial(() => this.#flush()).catch((err: unknown) => this.#options.onError?.(err));
    await this.#queue.catch(() => undefined);
  }

  /**
   * While running, the events of consecutive steps are held and published together (one
   * append, one request's worth of work for the gateway) at the end of each burst, or
   * once HELD_EVENTS are waiting: the rate is no longer one round trip per step. Anything
   * that needs the gateway to have them (a command's events, reconciliation) publishes
   * the held ones first, so the order of events is the order of steps.
   */
  async #pace(): Promise<void> {
    const rate = this.#options.rate;
    let budget = 0;
    let last = performance.now();
    const stepHeld = () =>
      this.#serial(async () => {
        if (!this.#started) await this.#start();
        return this.#step(true);
      });
    const flush = () => this.#serial(() => this.#flush());
    while (this.#running) {
      try {
        if (!Number.isFinite(rate)) {
          for (let i = 0; i < STEPS_PER_BURST && this.#running; i++) await stepHeld();
          await flush();
          // Let sockets and timers breathe between bursts.
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        const now = performance.now();
        // Never save up more than a second: after a stall, catch up gently, not in a burst.
        budget = Math.min(budget + ((now - last) / 1000) * rate, rate);
        last = now;
        while (this.#running && budget > 0) budget -= await stepHeld();
        await flush();
        await new Promise<void>((resolve) => setTimeout(resolve, 50));
      } catch (err) {
        this.#options.onError?.(err);
        await new Promise<void>((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(task, task);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Publishes `out` after whatever steps are holding (see #pace), in one append. */
  async #publish(out: EventInput[]): Promise<number> {
    const all = this.#held.length > 0 ? [...this.#held.splice(0), ...out] : out;
    if (all.length === 0) return 0;
    await this.#sink.publish(all);
    this.#eventsPublished += all.length;
    return out.length;
  }

  #flush(): Promise<number> {
    return this.#publish([]);
  }

  async #start(): Promise<number> {
    if (this.#started) return 0;
    this.#started = true;
    const out: EventInput[] = [];
    const now = this.clock.now();
    for (const desk of this.desks.values()) desk.start(now, out);
    let count = await this.#publish(out);
    if (this.#reconciler) count += await this.#publish(this.#reconciler.run(now));
    return count;
  }

  /** One step; `hold`: keep its events for the next publish instead of publishing them now. */
  async #step(hold = false): Promise<number> {
    this.clock.advance();
    const nowMs = this.clock.now();
    const now = iso(nowMs);
    const n = this.#steps++;
    const out: EventInput[] = [];

    const shown = this.symbols[n % this.symbols.length]!;
    for (const spec of this.symbols) {
      const bar = this.#market.step(spec);
      this.broker.setMark(spec.symbol, bar.price);
      out.push({ stream: `market:${spec.symbol}`, type: 'market:tick', data: { symbol: spec.symbol, price: bar.priceText, timestamp: now, volume: bar.volume.toFixed(), step: n } });
      // Every bar feeds the indicators; one symbol per step is published, to keep the default rate readable.
      const values = this.#indicators.get(spec.symbol)!.update(bar);
      if (spec === shown) {
        for (const account of this.desks.keys()) {
          for (const name of INDICATOR_NAMES) out.push({ stream: `indicators:${account}`, type: 'indicator:updated', data: { symbol: spec.symbol, name, value: values[name], timestamp: now } });
        }
      }
      const detection = this.#detectors.get(spec.symbol)!.update(bar);
      if (detection) {
        const patternId = `pat-${this.runId}-${++this.#patternSeq}`;
        for (const desk of this.desks.values()) desk.onPattern(detection, patternId, n, nowMs, out);
      }
    }

    this.broker.match(nowMs, out);
    this.broker.checkMargins(nowMs, out);
    for (const desk of this.desks.values()) desk.tick(n, nowMs, out);
    this.#portfolio(n % this.#options.markEverySteps === 0, out);
    const lose = this.#options.loseReportEverySteps;
    if (lose > 0 && n % lose === lose - 1) this.#loseArmed = true;
    if (this.#loseArmed && loseOneReport(out)) this.#loseArmed = false;
    let count = out.length;
    if (hold) {
      this.#held.push(...out);
      if (this.#held.length >= HELD_EVENTS) await this.#flush();
    } else {
      await this.#publish(out);
    }

    const every = this.#options.reconcileEverySteps;
    if (this.#reconciler && every > 0 && n % every === every - 1) {
      // After the step is stored, so the gateway's state includes it.
      await this.#flush();
      count += await this.#publish(this.#reconciler.run(nowMs));
    }
    return count;
  }

  /** Totals and campaigns of each account when they changed; marks only on mark steps. */
  #portfolio(markStep: boolean, out: EventInput[]): void {
    for (const [id, desk] of this.desks) {
      const stream = `portfolio:${id}`;
      const account = this.broker.account(id);
      const touched = out.some((e) => e.stream === stream);
      if (!markStep && !touched) continue;
      // Marks go out with the totals, so total_value_usd always equals the published balance plus positions.
      this.broker.pushMarks(id, out);
      this.#filter.push(out, { stream, type: 'portfolio:updated', data: portfolioTotals(account) });
      const campaign = campaignOf(account, desk.sessionId);
      this.#filter.push(out, { stream, type: 'campaign:updated', data: campaign }, `${stream}\u0000${String(campaign.campaign_id)}`);
    }
  }

  async #command(account: string, command: ParsedCommand): Promise<Record<string, unknown>> {
    if (!this.#started) await this.#start();
    const desk = this.desks.get(account);
    if (!desk) throw new CommandError(CommandErrorCode.UNKNOWN_ACCOUNT, `the simulator does not trade account "${account}"; it trades ${[...this.desks.keys()].join(', ')}`);
    const nowMs = this.clock.now();
    const out: EventInput[] = [];
    let result: Record<string, unknown>;
    switch (command.action) {
      case 'execute_signal':
        result = desk.execute(command.fields.signal_id, nowMs, out);
        break;
      case 'reject_signal':
        result = desk.reject(command.fields.signal_id, command.fields.reason ?? 'rejected by user', nowMs, out);
        break;
      case 'place_order': {
        const f = command.fields;
        if (f.order_type === 'limit' && (f.price === undefined || f.price === null)) {
          throw new CommandError(CommandErrorCode.INVALID_PRICE, 'a limit order needs a price');
        }
        const order = this.broker.place(
          account,
          { symbol: f.symbol, side: f.side, order_type: f.order_type, quantity: big(f.quantity), price: f.price ? big(f.price) : null, session_id: 'manual', reason: 'manual order' },
          nowMs,
          out,
        );
        result = { order_id: order.order_id, status: order.status };
        break;
      }
      case 'cancel_order':
        result = { order_id: this.broker.cancel(account, command.fields.order_id, nowMs, out).order_id, status: 'cancelled' };
        break;
      case 'close_position':
        result = desk.closePosition(command.fields.symbol, nowMs, out);
        break;
    }
    desk.sync(nowMs, out);
    this.#portfolio(false, out);
    await this.#publish(out);
    return result;
  }
}

/**
 * Drops the first close report (an order filled or cancelled, a position closed) of a
 * step; true when one was dropped. A lost close is the drift that lasts: later updates
 * of the same entity never come to heal it, only reconciliation does.
 */
function loseOneReport(out: EventInput[]): boolean {
  const index = out.findIndex((e) => e.type === 'order:closed' || e.type === 'position:closed');
  if (index < 0) return false;
  out.splice(index, 1);
  return true;
}
