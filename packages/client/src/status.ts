import type { Phase } from './connection.js';

/**
 * The public face of the connection's state machine (connection.ts), derived from it
 * by one exhaustive mapping and emitted as `status` with the old and new value:
 *
 *   disconnected ──connect()──▶ connecting ──connected──▶ connected
 *        ▲                          │                         │ socket lost
 *        │ disconnect()             ▼ failed                  ▼
 *        └──────────────────── reconnecting ◀──backoff──▶ (attempt n of max)
 *                                   │ attempts exhausted / close code says stop
 *                                   ▼
 *                                 failed ──reconnectNow()──▶ connecting
 */
export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'failed';

export interface ClientStatus {
  readonly state: ConnectionState;
  /** The reconnect attempt in progress or next (1-based); 0 while connected. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** When the next reconnect attempt starts (ms since epoch), while waiting for it. */
  readonly nextRetryAt: number | null;
  readonly url: string;
  readonly connectionId: string | null;
  /** When the last message arrived (ms since epoch). Updated without a `status` event. */
  readonly lastMessageAt: number | null;
  /** Updated without a `status` event, like `lastMessageAt`. */
  readonly lastSequenceNumber: number | null;
  /** The socket is down but the replicas are refreshed over HTTP. */
  readonly degraded: boolean;
  /** Why the last connection ended, when it did. */
  readonly lastClose: { readonly code: number; readonly reason: string } | null;
  /** While `failed`: why the client stopped (a close code that says so, a static token refused, attempts exhausted). */
  readonly stopReason: string | null;
}

/** The words a UI shows for a status ("Reconnecting (attempt 3/10)"). */
export function describeStatus(status: ClientStatus): string {
  switch (status.state) {
    case 'connected':
      return 'Live';
    case 'connecting':
      return 'Connecting…';
    case 'reconnecting':
      return `Reconnecting (attempt ${status.attempt}/${status.maxAttempts})${status.degraded ? ' — degraded' : ''}`;
    case 'failed':
    case 'disconnected':
      return 'Disconnected';
    default:
      return assertNever(status.state);
  }
}

/** The parts of the connection's context the public status shows. */
export interface StatusView {
  readonly attempt: number;
  readonly retryAt: number | null;
  readonly url: string;
  readonly connectionId: string | null;
  readonly degraded: boolean;
  readonly lastClose: { readonly code: number; readonly reason: string } | null;
  readonly stopReason: string | null;
}

/** The status without the fields updated silently on every message. */
export type DerivedStatus = Omit<ClientStatus, 'lastMessageAt' | 'lastSequenceNumber'>;

/** The one mapping of the connection's machine (connection.ts) to the public status. */
export function deriveStatus(phase: Phase, view: StatusView, maxAttempts: number): DerivedStatus {
  return {
    state: publicState(phase, view.attempt),
    attempt: phase === 'open' || phase === 'idle' ? 0 : view.attempt,
    maxAttempts,
    nextRetryAt: phase === 'backoff' ? view.retryAt : null,
    url: view.url,
    connectionId: view.connectionId,
    degraded: view.degraded,
    lastClose: view.lastClose,
    stopReason: phase === 'stopped' ? view.stopReason : null,
  };
}

/** Internal phase → the public `ClientStatus.state`. */
function publicState(phase: Phase, attempt: number): ConnectionState {
  switch (phase) {
    case 'idle':
      return 'disconnected';
    case 'connecting':
    case 'authenticating':
      return attempt === 0 ? 'connecting' : 'reconnecting';
    case 'open':
      return 'connected';
    case 'backoff':
      return 'reconnecting';
    case 'stopped':
      return 'failed';
    default:
      return assertNever(phase);
  }
}

export function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`);
}
