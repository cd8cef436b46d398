/**
 * The connection as an explicit state machine. Every change goes through the
 * client's one `#setState`, which emits `status` with the old and new value.
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

export function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`);
}
