import type { PortfolioState, StreamEvent } from '@tradesync/protocol';
import { ratioPercent, toBig } from './format.js';
import type { Throttle } from './throttle.js';

/**
 * Which events deserve a toast, and whether it may be shown now. The words are the
 * seed's ("New signal: SPRING on AAPL"); showing is injected (sonner in the page).
 */
export interface ToastSpec {
  readonly kind: 'info' | 'success' | 'warning' | 'error';
  readonly title: string;
  readonly description?: string;
  /** Adds "View details" that opens this signal. */
  readonly signalId?: string;
}

export interface NotificationOptions {
  readonly throttle: Throttle;
  readonly enabled: () => boolean;
  readonly show: (toast: ToastSpec) => void;
  readonly now?: () => number;
}

/** Heat is a warning past this share of the heat limit (percent). */
export const HEAT_WARNING_PERCENT = 80;
/** …and is re-armed when it falls back under this, so a heat hovering at 80% is not a stream of toasts. */
const HEAT_REARM_PERCENT = 75;

/** Heat as a share of the limit, in percent (`max_heat` when the producer gives it, else heat is already a percent). */
export function heatUtilization(portfolio: PortfolioState['portfolio']): number {
  const heat = toBig(portfolio.total_heat);
  if (!heat) return 0;
  const max = toBig((portfolio as Record<string, unknown>).max_heat);
  return (max && max.gt(0) ? ratioPercent(heat, max) : heat).round(1).toNumber();
}

/**
 * A campaign's use of its risk limit, in percent: its `utilization` when the producer
 * gives it, else `risk_allocated` over `risk_limit`, else `risk_allocated` read as a
 * percent already (seed 002's campaign carries only that). Undefined when none is a number.
 */
export function campaignUtilization(campaign: Record<string, unknown>): number | undefined {
  const given = toBig(campaign.utilization);
  if (given) return given.round(1).toNumber();
  const risk = toBig(campaign.risk_allocated);
  if (!risk) return undefined;
  const limit = toBig(campaign.risk_limit);
  return (limit && limit.gt(0) ? ratioPercent(risk, limit) : risk).round(1).toNumber();
}

/** The events that make a toast (the cases of `toastForEvent`). */
const TOAST_EVENTS: ReadonlySet<string> = new Set(['signal:new', 'signal:executed', 'signal:rejected']);

/** `symbolOf` names the signal's symbol when the event lacks it (`signal:executed` carries only the id). */
export function toastForEvent(event: Pick<StreamEvent, 'type' | 'data'>, symbolOf?: (signalId: string) => string | undefined): ToastSpec | undefined {
  const d = event.data;
  const id = typeof d.id === 'string' ? d.id : undefined;
  const symbol = typeof d.symbol === 'string' ? d.symbol : id !== undefined ? symbolOf?.(id) : undefined;
  switch (event.type) {
    case 'signal:new':
      return {
        kind: 'info',
        title: `New signal: ${typeof d.pattern_type === 'string' ? d.pattern_type : 'signal'} on ${symbol ?? '?'}`,
        description: typeof d.confidence_score === 'number' || typeof d.confidence_score === 'string' ? `Confidence ${d.confidence_score}%` : undefined,
        signalId: id,
      };
    case 'signal:executed':
      return { kind: 'success', title: `Signal executed${symbol ? `: ${symbol}` : ''}`, signalId: id };
    case 'signal:rejected':
      return { kind: 'error', title: `Signal rejected${symbol ? `: ${symbol}` : ''}`, description: typeof d.reason === 'string' ? d.reason : undefined, signalId: id };
    default:
      return undefined;
  }
}

export interface Notifications {
  onEvent(event: Pick<StreamEvent, 'type' | 'data'>, symbolOf?: (signalId: string) => string | undefined): void;
  onPortfolio(state: PortfolioState): void;
  /** Shown whatever the settings and the throttle say (answers to the user's own actions). */
  always(toast: ToastSpec): void;
}

export function createNotifications(options: NotificationOptions): Notifications {
  const now = options.now ?? Date.now;
  let heatArmed = true;
  /** Campaigns that crossed 80% and have not cooled under 75% since (warned once per crossing). */
  const hotCampaigns = new Set<string>();
  const pass = () => options.enabled() && options.throttle.allow(now());
  const offer = (toast: ToastSpec) => {
    if (pass()) options.show(toast);
  };
  return {
    onEvent(event, symbolOf) {
      // Gate first, build after: the symbol lookup reads the signals state (a reduce),
      // wasted on a toast that is off or throttled.
      if (!TOAST_EVENTS.has(event.type) || !pass()) return;
      const toast = toastForEvent(event, symbolOf);
      if (toast) options.show(toast);
    },
    onPortfolio(state) {
      const utilization = heatUtilization(state.portfolio);
      if (utilization > HEAT_WARNING_PERCENT && heatArmed) {
        heatArmed = false;
        offer({ kind: 'warning', title: `Portfolio heat at ${Math.round(utilization)}%`, description: 'Above 80% of the heat limit' });
      } else if (utilization < HEAT_REARM_PERCENT) {
        heatArmed = true;
      }
      for (const [id, campaign] of Object.entries(state.campaigns)) {
        const use = campaignUtilization(campaign);
        if (use === undefined) continue;
        if (use > HEAT_WARNING_PERCENT && !hotCampaigns.has(id)) {
          hotCampaigns.add(id);
          offer({ kind: 'warning', title: `Campaign ${id} at ${Math.round(use)}%`, description: 'Above 80% of its risk limit' });
        } else if (use < HEAT_REARM_PERCENT) {
          hotCampaigns.delete(id);
        }
      }
    },
    always(toast) {
      options.show(toast);
    },
  };
}
