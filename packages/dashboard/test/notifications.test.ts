import { describe, expect, it } from 'vitest';
import { initialState, type PortfolioState } from '@tradesync/protocol';
import { campaignUtilization, createNotifications, heatUtilization, toastForEvent, type ToastSpec } from '../src/core/notifications.js';
import { createThrottle } from '../src/core/throttle.js';

const signal = (id: string) => ({ type: 'signal:new', data: { id, symbol: 'AAPL', pattern_type: 'SPRING', confidence_score: 82 } });
const portfolio = (heat: string, max = '10.00'): PortfolioState => ({ ...initialState('portfolio'), portfolio: { total_heat: heat, max_heat: max } });

function harness(enabled = true) {
  let now = 0;
  const shown: ToastSpec[] = [];
  const n = createNotifications({ throttle: createThrottle(), enabled: () => enabled, show: (t) => shown.push(t), now: () => now });
  return { n, shown, advance: (ms: number) => (now += ms), setEnabled: (v: boolean) => (enabled = v) };
}

describe('toasts for desk events', () => {
  it('words signal toasts as the seed does and links the signal', () => {
    expect(toastForEvent(signal('s1'))).toMatchObject({ title: 'New signal: SPRING on AAPL', signalId: 's1' });
    expect(toastForEvent({ type: 'signal:executed', data: { id: 's1', symbol: 'AAPL' } })?.title).toBe('Signal executed: AAPL');
    expect(toastForEvent({ type: 'signal:rejected', data: { id: 's1' } })?.title).toBe('Signal rejected');
    expect(toastForEvent({ type: 'market:tick', data: {} })).toBeUndefined();
  });

  it('names the symbol of an executed signal from the feed when the event lacks it', () => {
    const { n, shown } = harness();
    n.onEvent({ type: 'signal:executed', data: { id: 's9' } }, () => 'MSFT');
    expect(shown[0]?.title).toBe('Signal executed: MSFT');
  });

  it('looks the symbol up only when the event lacks it and the toast will show', () => {
    const { n, shown, setEnabled } = harness();
    const asked: string[] = [];
    const symbolOf = (id: string) => (asked.push(id), 'MSFT');
    n.onEvent(signal('s1'), symbolOf);
    n.onEvent({ type: 'signal:updated', data: { id: 's2' } }, symbolOf);
    expect(asked).toEqual([]);
    expect(shown[0]?.title).toBe('New signal: SPRING on AAPL');
    setEnabled(false);
    n.onEvent({ type: 'signal:executed', data: { id: 's3' } }, symbolOf);
    expect(asked).toEqual([]);
    setEnabled(true);
    n.onEvent({ type: 'signal:rejected', data: { id: 's4' } }, symbolOf);
    n.onEvent({ type: 'signal:executed', data: { id: 's5' } }, symbolOf);
    n.onEvent({ type: 'signal:executed', data: { id: 's6' } }, symbolOf); // throttled: 3 in 10 s
    expect(asked).toEqual(['s4', 's5']);
    expect(shown.map((t) => t.title)).toEqual(['New signal: SPRING on AAPL', 'Signal rejected: MSFT', 'Signal executed: MSFT']);
  });

  it('shows at most 3 in 10 seconds', () => {
    const { n, shown, advance } = harness();
    for (let i = 0; i < 10; i++) n.onEvent(signal(`s${i}`));
    expect(shown).toHaveLength(3);
    advance(10_000);
    n.onEvent(signal('later'));
    expect(shown).toHaveLength(4);
  });

  it('shows none when switched off, but always shows answers to the user', () => {
    const { n, shown } = harness(false);
    n.onEvent(signal('s1'));
    n.onPortfolio(portfolio('9'));
    expect(shown).toHaveLength(0);
    n.always({ kind: 'error', title: 'Execute AAPL failed' });
    expect(shown).toHaveLength(1);
  });

  it('warns "Campaign C-123 at 85%" once per crossing of 80%, per campaign, re-armed under 75%', () => {
    const { n, shown, advance } = harness();
    const withCampaigns = (...campaigns: Array<[string, string]>): PortfolioState => ({
      ...initialState('portfolio'),
      campaigns: Object.fromEntries(campaigns.map(([id, use]) => [id, { campaign_id: id, risk_allocated: '1.00', positions_count: 1, utilization: use }])),
    });
    n.onPortfolio(withCampaigns(['C-123', '79.9'], ['C-7', '10']));
    n.onPortfolio(withCampaigns(['C-123', '85'], ['C-7', '10']));
    n.onPortfolio(withCampaigns(['C-123', '90'], ['C-7', '10']));
    expect(shown.map((t) => [t.kind, t.title])).toEqual([['warning', 'Campaign C-123 at 85%']]);
    n.onPortfolio(withCampaigns(['C-123', '77'], ['C-7', '81'])); // 77%: not cool enough; C-7 crosses on its own
    expect(shown.map((t) => t.title)).toEqual(['Campaign C-123 at 85%', 'Campaign C-7 at 81%']);
    advance(10_000);
    n.onPortfolio(withCampaigns(['C-123', '60'], ['C-7', '81']));
    n.onPortfolio(withCampaigns(['C-123', '86'], ['C-7', '81']));
    expect(shown.map((t) => t.title)).toEqual(['Campaign C-123 at 85%', 'Campaign C-7 at 81%', 'Campaign C-123 at 86%']);
  });

  it('reads a campaign\'s limit use from utilization, else risk over its limit, else risk as a percent (seed 002)', () => {
    expect(campaignUtilization({ utilization: '87.00', risk_allocated: '4.35' })).toBe(87);
    expect(campaignUtilization({ risk_allocated: '4.25', risk_limit: '5.00' })).toBe(85);
    expect(campaignUtilization({ risk_allocated: '85' })).toBe(85);
    expect(campaignUtilization({ positions_count: 2 })).toBeUndefined();
  });

  it('shows a rejected signal at severity error, an executed one as success, a new one as info', () => {
    expect(toastForEvent({ type: 'signal:rejected', data: { id: 's1', reason: 'risk' } })?.kind).toBe('error');
    expect(toastForEvent({ type: 'signal:executed', data: { id: 's1' } })?.kind).toBe('success');
    expect(toastForEvent(signal('s1'))?.kind).toBe('info');
  });

  it('warns once when heat crosses 80% of the limit, and again only after it cooled down', () => {
    const { n, shown } = harness();
    n.onPortfolio(portfolio('7.9'));
    n.onPortfolio(portfolio('8.2'));
    n.onPortfolio(portfolio('8.5'));
    expect(shown.map((t) => t.title)).toEqual(['Portfolio heat at 82%']);
    n.onPortfolio(portfolio('7.8')); // 78%: not cool enough to re-arm
    n.onPortfolio(portfolio('8.3'));
    expect(shown).toHaveLength(1);
    n.onPortfolio(portfolio('5'));
    n.onPortfolio(portfolio('9'));
    expect(shown).toHaveLength(2);
  });

  it('reads heat as a percent when the producer gives no limit', () => {
    expect(heatUtilization({ total_heat: '82.44' })).toBe(82.4);
    expect(heatUtilization({ total_heat: '8.2', max_heat: '10' })).toBe(82);
    expect(heatUtilization({})).toBe(0);
  });
});
