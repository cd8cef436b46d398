import { useConnection, useDesk } from './context.js';

/** Shown when a stream could not be synchronized: the data may be old, and the user can act. */
export function SyncBanner() {
  const { desk } = useDesk();
  const failure = useConnection((c) => c.syncFailure);
  const busy = useConnection((c) => c.forceSyncing);
  if (!failure) return null;
  return (
    <div className="banner" role="alert" data-testid="sync-banner">
      <strong>Data may be out of date.</strong>
      <span className="banner-text">{failure.message}</span>
      <button type="button" className="btn btn-primary" onClick={() => desk.forceSync()} disabled={busy}>
        {busy ? 'Syncing…' : 'Force Sync'}
      </button>
      <span>
        or{' '}
        <button type="button" className="link" onClick={() => location.reload()}>
          refresh the page
        </button>
      </span>
    </div>
  );
}
