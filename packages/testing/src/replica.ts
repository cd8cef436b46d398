/**
 * Helpers shared by the resume, crash, ordering and compaction tests: a client-side
 * replica that rebuilds stream state with the one reducer from exactly what a real
 * socket delivered (checking offsets as it goes), and paging readers over REST.
 */
import { vi } from 'vitest';
import { applyEvent, initialState, parseStream, stateChecksum, type StreamState } from '@tradesync/protocol';
import type { Message, TestClient } from './harness.js';

export type WireEvent = Record<string, unknown> & { type: string; stream: string; epoch: string; offset: number; data: Record<string, unknown> };

export interface ReplicaStream {
  epoch: string;
  offset: number;
  state: StreamState;
  /** A conflated subscription (the reply had `max_rate`): offsets may jump. */
  jumps: boolean;
  /** `stream_position` messages whose checksum matched (see `#onPosition`). */
  verified: number;
}

/**
 * Consumes a connection's messages in arrival order. Within one connection segment
 * (from the `subscribed` reply on) every event of a stream must carry exactly the
 * previous offset + 1 (a conflated one: a higher offset): a gap or a duplicate is
 * recorded as a problem, never repaired. Checksums are checked too: a `subscribed`
 * reply's against the state at its offset, and every `stream_position` (which must not
 * be ahead of the events received, and must match the state at its offset).
 */
export class Replica {
  readonly streams = new Map<string, ReplicaStream>();
  readonly problems: string[] = [];
  /** Streams subscribed on the current connection (a `subscribed` reply was seen). */
  readonly #live = new Set<string>();
  #client: TestClient | undefined;
  #index = 0;

  /** Starts a new connection segment: nothing is live until its `subscribed` replies arrive. */
  attach(client: TestClient): void {
    this.#client = client;
    this.#index = 0;
    this.#live.clear();
  }

  /** Whether the current connection has received the `subscribed` reply for `stream`. */
  isLive(stream: string): boolean {
    return this.#live.has(stream);
  }

  /** The position to resume from: the last offset applied. */
  since(stream: string): { epoch: string; offset: number } | undefined {
    const s = this.streams.get(stream);
    return s ? { epoch: s.epoch, offset: s.offset } : undefined;
  }

  /** Applies every message received on the attached connection that was not consumed yet. */
  consume(): void {
    const client = this.#client;
    if (!client) return;
    for (; this.#index < client.messages.length; this.#index++) this.#onMessage(client.messages[this.#index]!);
  }

  #onMessage(m: Message): void {
    if (m.type === 'subscribed') return this.#onSubscribed(m);
    if (m.type === 'stream_position') return this.#onPosition(m);
    if (m.type === 'batch_update') {
      for (const e of m.events as WireEvent[]) this.#onEvent(e);
      return;
    }
    if (typeof m.offset === 'number' && typeof m.stream === 'string') this.#onEvent(m as unknown as WireEvent);
  }

  #onSubscribed(m: Message): void {
    const stream = m.stream as string;
    const ref = parseStream(stream);
    if (!ref) return void this.problems.push(`subscribed to an invalid stream ${stream}`);
    const offset = m.offset as number;
    const epoch = m.epoch as string;
    // Conflated or session-scoped: offsets jump.
    const jumps = typeof m.max_rate === 'number' || typeof m.session_id === 'string';
    if (m.recovered === true) {
      const prev = this.streams.get(stream) ?? { epoch, offset: 0, state: initialState(ref.kind) };
      if (prev.epoch !== epoch) this.problems.push(`${stream}: recovered across an epoch change ${prev.epoch} -> ${epoch}`);
      let state = prev.state;
      let at = prev.offset;
      for (const e of (m.events as WireEvent[] | undefined) ?? []) {
        if (jumps ? e.offset <= at : e.offset !== at + 1) this.problems.push(`${stream}: recovered event ${e.offset} after ${at}`);
        state = applyEvent(state, e);
        at = e.offset;
      }
      if (jumps ? at > offset : at !== offset) this.problems.push(`${stream}: recovered events end at ${at}, reply says ${offset}`);
      this.streams.set(stream, { epoch, offset, state, jumps, verified: 0 });
    } else {
      const snapshot = m.snapshot as { epoch: string; offset: number; state: StreamState };
      if (snapshot.offset !== offset || snapshot.epoch !== epoch) this.problems.push(`${stream}: snapshot position differs from the reply`);
      this.streams.set(stream, { epoch, offset: snapshot.offset, state: structuredClone(snapshot.state), jumps, verified: 0 });
    }
    const checksum = m.checksum;
    if (typeof checksum === 'string' && checksum !== stateChecksum(this.streams.get(stream)!.state)) {
      this.problems.push(`${stream}: subscribed at ${offset} with checksum ${checksum}, the state there has ${stateChecksum(this.streams.get(stream)!.state)}`);
    }
    this.#live.add(stream);
  }

  #onPosition(m: Message): void {
    const stream = m.stream as string;
    const s = this.streams.get(stream);
    if (!this.#live.has(stream) || !s) return void this.problems.push(`${stream}: stream_position before its subscribed reply`);
    const offset = m.offset as number;
    if (m.epoch !== s.epoch) return void this.problems.push(`${stream}: stream_position of epoch ${String(m.epoch)}, subscribed to ${s.epoch}`);
    if (offset > s.offset && !s.jumps) return void this.problems.push(`${stream}: stream_position at ${offset} before events up to it arrived (have ${s.offset})`);
    if (offset < s.offset) return void this.problems.push(`${stream}: stream_position at ${offset} after later events (have ${s.offset})`);
    const own = stateChecksum(s.state);
    // Offsets that jump: the events between were not this subscription's, and the checksum says so.
    if (s.jumps) s.offset = offset;
    if (m.checksum !== own) return void this.problems.push(`${stream}: stream_position at ${offset} has checksum ${String(m.checksum)}, the state there has ${own}`);
    s.verified++;
  }

  #onEvent(e: WireEvent): void {
    if (!this.#live.has(e.stream)) return void this.problems.push(`${e.stream}: live event ${e.offset} before its subscribed reply`);
    const s = this.streams.get(e.stream)!;
    if (e.epoch !== s.epoch) this.problems.push(`${e.stream}: live event of epoch ${e.epoch}, subscribed to ${s.epoch}`);
    if (s.jumps ? e.offset <= s.offset : e.offset !== s.offset + 1) {
      this.problems.push(`${e.stream}: live event ${e.offset} after ${s.offset} (${e.offset <= s.offset ? 'duplicate' : 'gap'})`);
      if (e.offset <= s.offset) return;
    }
    s.state = applyEvent(s.state, e);
    s.offset = e.offset;
  }
}

/** Every event of a stream over REST (`GET /api/v1/streams/:s/events`), paging until the head. */
export async function readAllEvents(baseUrl: string, stream: string): Promise<{ epoch: string; head: number; firstOffset: number; events: WireEvent[] }> {
  const events: WireEvent[] = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${baseUrl}/api/v1/streams/${encodeURIComponent(stream)}/events?after=${after}&limit=10000`);
    const body = (await res.json()) as { epoch: string; head: number; first_offset: number; events: WireEvent[] };
    if (res.status !== 200) throw new Error(`GET events of ${stream} after ${after}: ${res.status} ${JSON.stringify(body)}`);
    events.push(...body.events);
    after = events.at(-1)?.offset ?? after;
    if (body.events.length === 0 || after >= body.head) return { epoch: body.epoch, head: body.head, firstOffset: body.first_offset, events };
  }
}

/** `GET /api/state/snapshot` for an account. */
export async function stateSnapshot(baseUrl: string, account: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${baseUrl}/api/state/snapshot?account=${encodeURIComponent(account)}`);
  if (res.status !== 200) throw new Error(`GET /api/state/snapshot: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

/**
 * Resolves once the client has received a live event (or reply) of `stream` at
 * `offset` or beyond. Polls the recorded messages (vi.waitFor), so it does not move
 * the client's `next()` cursor.
 */
export async function waitForOffset(client: TestClient, stream: string, offset: number, timeoutMs = 10_000): Promise<void> {
  const reaches = (m: Message): boolean => {
    if (m.type === 'batch_update') return (m.events as WireEvent[]).some((e) => e.stream === stream && e.offset >= offset);
    return m.stream === stream && typeof m.offset === 'number' && m.offset >= offset;
  };
  await vi.waitFor(
    () => {
      if (!client.messages.some(reaches)) throw new Error(`${stream} has not reached offset ${offset}`);
    },
    { timeout: timeoutMs, interval: 5 },
  );
}
