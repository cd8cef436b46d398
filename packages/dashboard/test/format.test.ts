import { describe, expect, it } from 'vitest';
import { formatAge, formatDecimal, formatMoney, formatPercent, formatPrice, formatQty, formatSigned, formatTime, group, ratioPercent, sign, toBig } from '../src/core/format.js';

describe('formatting decimals with big.js', () => {
  it('groups thousands without touching the digits', () => {
    expect(group('1234567.891')).toBe('1,234,567.891');
    expect(group('-1000')).toBe('-1,000');
    expect(group('999')).toBe('999');
  });

  it('formats money exactly, even where a float would not', () => {
    expect(formatMoney('125046.23')).toBe('125,046.23');
    expect(formatMoney('0.1')).toBe('0.10');
    // 9007199254740993 is not a double; big.js keeps it.
    expect(formatMoney('9007199254740993.005')).toBe('9,007,199,254,740,993.01');
    expect(formatMoney('-0.001')).toBe('0.00');
  });

  it('signs P&L', () => {
    expect(formatSigned('1250')).toBe('+1,250.00');
    expect(formatSigned('-80.1')).toBe('-80.10');
    expect(formatSigned('0')).toBe('0.00');
    expect(formatSigned('0.001')).toBe('0.00');
  });

  it('keeps a price at the precision it was quoted (2 to 8 decimals)', () => {
    expect(formatPrice('98.125')).toBe('98.125');
    expect(formatPrice('42000')).toBe('42,000.00');
    expect(formatPrice('0.000012345678')).toBe('0.00001235');
  });

  it('drops trailing zeros from quantities', () => {
    expect(formatQty('0.5000')).toBe('0.5');
    expect(formatQty('120')).toBe('120');
    expect(formatQty('12500.25')).toBe('12,500.25');
  });

  it('shows a dash for missing or malformed values', () => {
    for (const v of [undefined, null, '', 'abc', {}]) {
      expect(formatMoney(v)).toBe('—');
      expect(formatPrice(v)).toBe('—');
      expect(formatQty(v)).toBe('—');
    }
    expect(toBig('1e3')?.toString()).toBe('1000');
  });

  it('formats percentages, signs and ratios', () => {
    expect(formatPercent('82.456')).toBe('82.46%');
    expect(formatDecimal('55.55', 1)).toBe('55.6');
    expect(sign('-0.01')).toBe(-1);
    expect(sign('0')).toBe(0);
    expect(sign('x')).toBe(0);
    expect(ratioPercent('8.2', '10').toString()).toBe('82');
    expect(ratioPercent('1', '0').toString()).toBe('0');
  });

  it('says how old data is, compactly', () => {
    expect(formatAge(200)).toBe('now');
    expect(formatAge(4_500)).toBe('4s');
    expect(formatAge(3 * 60_000)).toBe('3m');
    expect(formatAge(2 * 3_600_000)).toBe('2h');
    expect(formatAge(5 * 86_400_000)).toBe('5d');
  });

  it('prints times in UTC', () => {
    expect(formatTime('2024-03-15T14:30:07Z')).toBe('14:30:07');
    expect(formatTime(null)).toBe('—');
    expect(formatTime('nope')).toBe('—');
  });
});
