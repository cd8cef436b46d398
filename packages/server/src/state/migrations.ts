import type { StreamKind } from '@tradesync/protocol';

/**
 * Snapshot schema versions (seed 003's state versioning). A snapshot records the
 * version of the state shape it was written with; on load it is migrated step by
 * step (v1 → v2 → …) to the current version. A snapshot newer than this code knows
 * is refused: state is then rebuilt from the log alone, never guessed.
 */
export const CURRENT_STATE_VERSION = 1;

export interface Migration {
  readonly from: number;
  /** Rewrites a state of version `from` into version `from + 1`. Must be pure. */
  readonly migrate: (state: unknown, kind: StreamKind) => unknown;
}

class UnknownStateVersionError extends Error {
  override readonly name = 'UnknownStateVersionError';
}

export class MigrationRegistry {
  readonly #steps = new Map<number, Migration>();

  constructor(readonly currentVersion: number = CURRENT_STATE_VERSION, migrations: readonly Migration[] = []) {
    for (const m of migrations) this.register(m);
  }

  register(migration: Migration): this {
    if (this.#steps.has(migration.from)) throw new Error(`a migration from version ${migration.from} is already registered`);
    if (migration.from >= this.currentVersion) throw new Error(`migration from ${migration.from} goes past the current version ${this.currentVersion}`);
    this.#steps.set(migration.from, migration);
    return this;
  }

  /** Brings `state` from `version` to the current version. */
  migrate(state: unknown, version: number, kind: StreamKind): unknown {
    if (version > this.currentVersion) {
      throw new UnknownStateVersionError(`snapshot version ${version} is newer than this server's ${this.currentVersion}`);
    }
    let current = state;
    for (let v = version; v < this.currentVersion; v++) {
      const step = this.#steps.get(v);
      if (!step) throw new UnknownStateVersionError(`no migration registered from snapshot version ${v}`);
      current = step.migrate(current, kind);
    }
    return current;
  }
}

/** The migrations this server ships with (none yet: version 1 is the first shape). */
export const defaultMigrations = (): MigrationRegistry => new MigrationRegistry();
