import { POSITION_QUIET_EVERY, type StreamPositionMessage } from '@tradesync/protocol';

/**
 * Proof that a replica is fresh, from the server's `stream_position` messages: each says
 * where the stream stands on this connection and the checksum of its state there.
 * Pure decisions here; Streams acts on them.
 */

/** What one `stream_position` says about a replica. */
export type PositionVerdict =
  /** Same checksum at the same offset (or behind it, when offsets jump and the events between were not this subscription's): the replica is the server's state. */
  | 'verified'
  /** The replica is behind the position: live events were lost on the way. Resume from the replica's offset. */
  | 'behind'
  /** Same offset, another checksum: the replica's state is wrong. Take a snapshot. */
  | 'diverged'
  /** Another epoch: the stream's history was replaced. Resync. */
  | 'other_epoch'
  /** Nothing to judge: the replica is syncing, or already past the position (a newer reply came meanwhile). */
  | 'skip';

export interface JudgedReplica {
  readonly epoch: string | undefined;
  readonly offset: number;
  /** True while live events are held for a sync. */
  readonly holding: boolean;
  /** Offsets may jump (conflated or session-scoped): a replica behind the position may still hold its state. */
  readonly jumps: boolean;
  checksum(): string;
}

export function judgePosition(replica: JudgedReplica, position: Pick<StreamPositionMessage, 'epoch' | 'offset' | 'checksum'>): PositionVerdict {
  if (replica.holding || replica.epoch === undefined) return 'skip';
  if (replica.epoch !== position.epoch) return 'other_epoch';
  if (replica.offset < position.offset) return replica.jumps && replica.checksum() === position.checksum ? 'verified' : 'behind';
  if (replica.offset > position.offset) return 'skip';
  return replica.checksum() === position.checksum ? 'verified' : 'diverged';
}

/** What the client knows of one stream's freshness (the debug panel's "verified at #offset, Ns ago"). */
export interface StreamFreshness {
  readonly stream: string;
  /** The last offset a checksum proved, and when (client clock, ms); undefined before the first. */
  readonly verifiedOffset: number | undefined;
  readonly verifiedAt: number | undefined;
  /** When the last `stream_position` for the stream arrived. */
  readonly lastPositionAt: number | undefined;
  /**
   * No `stream_position` came for two of the stream's intervals while connected: its
   * view may be old. Cleared by the next position.
   */
  readonly stale: boolean;
}

/** One stream's freshness record, kept by its subscription. */
export class Freshness {
  verifiedOffset: number | undefined;
  verifiedAt: number | undefined;
  lastPositionAt: number | undefined;
  /** When the stream last became live (a sync completed): the quiet deadline counts from here at the earliest. */
  liveSince: number | undefined;
  /** When the first event not yet covered by a position arrived. */
  unverifiedSince: number | undefined;
  stale = false;

  /**
   * When the stream turns stale, given the server's position interval: a received event
   * uncovered by a position for 2 intervals (a stream with events gets one every
   * interval), or no position at all for 2 quiet intervals (POSITION_QUIET_EVERY each).
   * A conflated stream's position waits for its next frame: `frameGapMs` (1000 / max_rate)
   * is added. Undefined while the stream is not live.
   */
  staleAt(intervalMs: number, frameGapMs = 0): number | undefined {
    if (this.liveSince === undefined) return undefined;
    const heard = Math.max(this.liveSince, this.lastPositionAt ?? this.liveSince);
    const quiet = heard + 2 * POSITION_QUIET_EVERY * intervalMs;
    return this.unverifiedSince === undefined ? quiet : Math.min(quiet, this.unverifiedSince + 2 * intervalMs + frameGapMs);
  }

  snapshot(stream: string): StreamFreshness {
    return { stream, verifiedOffset: this.verifiedOffset, verifiedAt: this.verifiedAt, lastPositionAt: this.lastPositionAt, stale: this.stale };
  }
}
