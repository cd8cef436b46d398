import { applyEvents, applyWithSessions, hasSessions, initialState, type StreamRef, type StreamState } from '@tradesync/protocol';
import type { Engine, StoredEvent, StreamHead } from '../engines/engine.js';
import type { Logger } from '../logger.js';
import type { MigrationRegistry } from './migrations.js';
import type { StreamEntry } from './store.js';

/**
 * A stream's entry built from what the engine keeps: its newest snapshot (migrated to
 * the current state schema) plus the log after it, through the one reducer. Used at
 * start-up and when a stream's history was replaced (new epoch).
 */

/** The stored data of a stream cannot be turned back into its exact state. */
export class StateRebuildError extends Error {
  override readonly name = 'StateRebuildError';
}

/** Events read from the engine per round trip while rebuilding. */
const PAGE = 1000;

export function emptyEntry(ref: StreamRef, head: StreamHead): StreamEntry {
  return { name: ref.name, ref, kind: ref.kind, epoch: head.epoch, head: 0, state: initialState(ref.kind), window: [], snapshotOffset: 0, sessions: new WeakMap() };
}

/** Applies contiguous events of one stream: one reducer batch, one window append (kept to about `memoryWindow`). */
export function applyMany(entry: StreamEntry, events: readonly StoredEvent[], memoryWindow: number): void {
  if (events.length === 0) return;
  if (hasSessions(entry.kind)) {
    // Each event's session is judged against the state just before it (see sessionOfEvent).
    const { state, sessions } = applyWithSessions(entry.kind, entry.state, events);
    entry.state = state;
    for (let i = 0; i < events.length; i++) entry.sessions.set(events[i]!, sessions[i]);
  } else {
    entry.state = applyEvents(entry.state, events);
  }
  entry.head = events[events.length - 1]!.offset;
  entry.window.push(...events);
  // Trim the window in chunks so the copy is amortized.
  if (entry.window.length > memoryWindow * 2) entry.window = entry.window.slice(-memoryWindow);
}

export async function rebuildEntry(
  ref: StreamRef,
  deps: { readonly engine: Engine; readonly migrations: MigrationRegistry; readonly log: Logger; readonly memoryWindow: number },
): Promise<StreamEntry> {
  const { engine, migrations, log } = deps;
  const head = await engine.head(ref.name);
  const entry = emptyEntry(ref, head);
  const snapshot = await engine.loadSnapshot(ref.name);
  let unusable: string | undefined;
  if (snapshot && snapshot.epoch === head.epoch) {
    try {
      entry.state = migrations.migrate(snapshot.state, snapshot.schemaVersion, ref.kind) as StreamState;
      entry.head = snapshot.offset;
      entry.snapshotOffset = snapshot.offset;
    } catch (err) {
      unusable = (err as Error).message;
      log.error({ err, stream: ref.name }, 'snapshot cannot be migrated; rebuilding from the log alone');
    }
  }
  for (;;) {
    const result = await engine.read(ref.name, entry.head, PAGE);
    if (result.trimmed) {
      // Compaction keeps a snapshot at or past every trim point, so this happens only
      // when that snapshot could not be used. Serving the rest would be serving wrong
      // state under the same epoch (and the next compaction would overwrite the only
      // complete copy): refuse instead, and say what to do.
      throw new StateRebuildError(
        `stream ${ref.name}: its snapshot cannot be used (${unusable ?? 'missing'}) and its log was trimmed past it (first kept offset ${head.first}); ` +
          'the state cannot be rebuilt exactly. Run a server version that reads this snapshot, or remove the stream\'s data to start it over.',
      );
    }
    applyMany(entry, result.events, deps.memoryWindow);
    if (result.events.length < PAGE) break;
  }
  return entry;
}
