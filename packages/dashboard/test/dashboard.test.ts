import { describe, expect, it } from 'vitest';
import { accountFrom } from '../src/core/dashboard.js';

describe('the account of ?account=', () => {
  it('takes any account name the protocol accepts', () => {
    expect(accountFrom('demo-2')).toBe('demo-2');
    expect(accountFrom('ops_7.test')).toBe('ops_7.test');
  });

  it('falls back to the first account when missing or malformed (subscribe would throw)', () => {
    expect(accountFrom(null)).toBe('demo');
    expect(accountFrom('')).toBe('demo');
    expect(accountFrom('a b')).toBe('demo');
    expect(accountFrom('-lead')).toBe('demo');
    expect(accountFrom('x:y')).toBe('demo');
  });
});
