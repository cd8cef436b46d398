import { CloseCode, closeCodePolicy } from '@tradesync/protocol';
import { assertNever } from './status.js';

/** How the client gets its token: none, one fixed string, or a function asked at every connection. */
export type TokenSource = 'none' | 'static' | 'function';

/** What the connection does after a close. */
export type AfterClose =
  /** Wait (backoff) and reconnect; every stream resumes from its position. */
  | { readonly next: 'retry'; readonly snapshot: boolean }
  /** Do not reconnect: `reason` says why (shown in `status.stopReason`). */
  | { readonly next: 'stop'; readonly reason: string };

/**
 * The whole close-code policy of the client, read from the protocol's `closeCodePolicy`
 * (codes.ts): one close code, one decision.
 *
 * - `resume` (1000–1015, 4000–4099, anything unknown): retry with backoff and resume.
 *   4009 STATE_INVALIDATED also says our positions are worthless: the next sync of
 *   every stream takes a snapshot. 1013 TRY_AGAIN_LATER is a resume like any other.
 * - `reauthenticate` (4001, 4100–4199): only a new token can help. A token function is
 *   asked again on the next connection (it always is), so retry; a static token, or
 *   none, would be refused again and again: stop and say why.
 * - `stop` (4200–4299): the server refuses this client for good.
 */
export function afterClose(code: number, reason: string, token: TokenSource): AfterClose {
  const policy = closeCodePolicy(code);
  const said = reason ? ` (${code}: ${reason})` : ` (${code})`;
  switch (policy) {
    case 'resume':
      return { next: 'retry', snapshot: code === CloseCode.STATE_INVALIDATED };
    case 'reauthenticate':
      if (token === 'function') return { next: 'retry', snapshot: false };
      return {
        next: 'stop',
        reason:
          token === 'static'
            ? `the server rejected the token${said}; a static token cannot be refreshed: pass a token function to reconnect`
            : `the server requires a token${said}; none is configured`,
      };
    case 'stop':
      return { next: 'stop', reason: `the server refused this client${said}` };
    default:
      return assertNever(policy);
  }
}
