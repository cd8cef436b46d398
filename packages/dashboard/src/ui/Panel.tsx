import type { ReactNode } from 'react';
import { formatAge } from '../core/format.js';
import { PANELS, type PanelId, type StreamSlice } from '../core/stores.js';
import { useConnection, useDesk, useLive } from './context.js';

interface PanelProps {
  readonly id: PanelId;
  readonly title: string;
  /** When the data shown last changed (null: not yet synced). */
  readonly updatedAt: number | null;
  readonly synced?: boolean;
  /** The stream the panel shows: when the server's positions for it stopped coming, the panel greys and says for how long. */
  readonly freshness?: Pick<StreamSlice<unknown>, 'stale' | 'heardAt'> | undefined;
  readonly tools?: ReactNode;
  readonly className?: string;
  readonly children: ReactNode;
}

/**
 * A panel: title, how old its data is, and greyed out while the connection is not live
 * or while the server's positions for its stream have stopped coming (stale).
 */
export function Panel({ id, title, updatedAt, synced = true, freshness, tools, className, children }: PanelProps) {
  const live = useLive();
  const now = useConnection((c) => c.now);
  const { settings } = useDesk();
  const age = updatedAt === null ? null : Math.max(0, now - updatedAt);
  const silent = live && synced && freshness?.stale === true;
  const stale = !live || !synced || silent;
  const heard = freshness?.heardAt ?? updatedAt;
  const name = PANELS.find((p) => p.id === id)?.title ?? title;
  const ageText = updatedAt === null ? 'waiting for data' : `updated ${formatAge(age ?? 0)}${age !== null && age >= 1000 ? ' ago' : ''}`;
  return (
    <section className={`panel panel-${id}${className ? ` ${className}` : ''}`} data-panel={id} data-stale={stale ? 'true' : 'false'} aria-labelledby={`panel-${id}-title`}>
      <header className="panel-head">
        <h2 id={`panel-${id}-title`}>{title}</h2>
        {tools}
        <span className="age" data-age title={updatedAt === null ? undefined : new Date(updatedAt).toISOString()}>
          {silent ? `no update from the server for ${formatAge(heard === null ? 1000 : Math.max(1000, now - heard))} · ` : ''}
          {!silent && stale && live ? 'syncing… · ' : ''}
          {!live ? 'not live · ' : ''}
          {ageText}
        </span>
        <button
          type="button"
          className="icon-btn"
          aria-label={`Close ${name} panel`}
          title="Close panel (reopen from View)"
          onClick={() => settings.setPanel(id, false)}
        >
          ×
        </button>
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}
