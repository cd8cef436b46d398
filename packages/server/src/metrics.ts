import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { EVENT_TYPES } from '@tradesync/protocol';

/**
 * Prometheus metrics of one gateway. Each gateway has its own registry, so several
 * gateways in one process (tests, benchmarks) never mix their numbers.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly connections = new Gauge({ name: 'tradesync_connections', help: 'Open WebSocket connections', registers: [this.registry] });
  readonly messagesIn = new Counter({
    name: 'tradesync_messages_in_total',
    help: 'Messages received from clients, by type (unknown types counted as "unknown")',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly framesOut = new Counter({ name: 'tradesync_frames_out_total', help: 'Frames sent to clients', registers: [this.registry] });
  readonly eventsDelivered = new Counter({
    name: 'tradesync_events_delivered_total',
    help: 'Live events delivered to clients (one per event per connection)',
    registers: [this.registry],
  });
  readonly eventsAppended = new Counter({
    name: 'tradesync_events_appended_total',
    help: 'Events appended to the log, by stream kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly appendToSend = new Histogram({
    name: 'tradesync_append_to_send_seconds',
    help: 'Time from an event reaching the gateway state to its frames being written to every subscriber',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly slowConsumerCloses = new Counter({
    name: 'tradesync_slow_consumer_closes_total',
    help: 'Connections closed with 4008 because their send buffer passed the limit',
    registers: [this.registry],
  });
  readonly resumes = new Counter({
    name: 'tradesync_resumes_total',
    help: 'Subscriptions that asked to resume, by outcome: recovered (missed events replayed) or snapshot',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly requestsRefused = new Counter({
    name: 'tradesync_requests_refused_total',
    help: 'HTTP requests and WebSocket upgrades refused before reaching a route, by reason: origin, host, connections_per_ip, connections',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly tokenExpiryCloses = new Counter({
    name: 'tradesync_token_expiry_closes_total',
    help: 'Connections closed with 4101 because their token expired',
    registers: [this.registry],
  });
  readonly heartbeatCloses = new Counter({
    name: 'tradesync_heartbeat_closes_total',
    help: 'Connections dropped with 4000 because the peer was silent for too long (a dead or half-open peer)',
    registers: [this.registry],
  });
  readonly largeEvents = new Counter({
    name: 'tradesync_large_events_total',
    help: 'Live events over 10 KB serialized for clients, by event type (keep live messages small: link to details, e.g. full_details_url)',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly positionsSent = new Counter({
    name: 'tradesync_stream_positions_sent_total',
    help: 'stream_position messages sent to subscribers (each carries the state checksum at its offset)',
    registers: [this.registry],
  });
  readonly checksums = new Counter({
    name: 'tradesync_checksums_total',
    help: 'Stream state checksums computed (once per stream and offset, however many subscribers)',
    registers: [this.registry],
  });
  readonly checksumSeconds = new Counter({
    name: 'tradesync_checksum_seconds_total',
    help: 'Time the event loop spent computing stream state checksums',
    registers: [this.registry],
  });
  readonly errorsSent = new Counter({
    name: 'tradesync_errors_sent_total',
    help: 'Error replies sent to clients, by code',
    labelNames: ['code'],
    registers: [this.registry],
  });

  /* Per event type, what fan-out handed to subscribers (seed 002's "messages sent per second per event type"). */

  /**
   * Kept as plain numbers on the hot path (one Map update per event, whatever the
   * subscriber count) and copied into `eventsSent` when /metrics is scraped: a
   * prom-client `inc` with labels hashes the labels on every call.
   */
  readonly #sentByType = new Map<string, number>(Object.keys(EVENT_TYPES).map((type) => [type, 0]));
  readonly eventsSent: Counter<'type'>;

  /* Reported by clients (POST /api/client-metrics): what only the desk can see. */

  readonly clientReports = new Counter({
    name: 'tradesync_client_metric_reports_total',
    help: 'Reports received on POST /api/client-metrics (each carries what one client counted since its previous report)',
    registers: [this.registry],
  });
  readonly clientReconnectAttempts = new Counter({
    name: 'tradesync_client_reconnect_attempts_total',
    help: 'Reconnect attempts clients reported (each attempt after a lost connection, before it succeeded or failed)',
    registers: [this.registry],
  });
  readonly clientReconnectSuccesses = new Counter({
    name: 'tradesync_client_reconnect_successes_total',
    help: 'Reconnects clients reported as successful (the socket was Live again after a loss)',
    registers: [this.registry],
  });
  readonly clientResyncBuffer = new Gauge({
    name: 'tradesync_client_resync_buffer_events',
    help: 'Live events a client held back while one of its streams synced: the largest since its previous report, as the latest report said',
    registers: [this.registry],
  });
  readonly clientToastsShown = new Counter({
    name: 'tradesync_client_toasts_shown_total',
    help: 'Toasts clients reported showing (the desk allows at most 3 per 10 s)',
    registers: [this.registry],
  });

  /* The state store (seed 003's StateStoreMetrics): snapshots, compaction, rebuilds. */

  readonly snapshotsWritten = new Counter({
    name: 'tradesync_snapshots_written_total',
    help: 'Stream snapshots saved to the engine (every history.snapshot_every events, before a trim, and at shutdown)',
    registers: [this.registry],
  });
  readonly compactions = new Counter({
    name: 'tradesync_compactions_total',
    help: 'Compaction passes run over every stream (one per history.compact_interval)',
    registers: [this.registry],
  });
  readonly compactionErrors = new Counter({
    name: 'tradesync_compaction_errors_total',
    help: 'Streams whose compaction failed within a pass (the ERROR log line says why); the next pass tries again',
    registers: [this.registry],
  });
  readonly eventsTrimmed = new Counter({
    name: 'tradesync_events_trimmed_total',
    help: 'Events removed from the log by compaction (history.max_events, history.max_age); a snapshot at or past them holds their effect',
    registers: [this.registry],
  });
  readonly rebuildSeconds = new Histogram({
    name: 'tradesync_state_rebuild_seconds',
    help: 'Time to rebuild one stream from its newest snapshot plus the log after it, by reason: start (gateway start-up, before it listens) or reset (its history was replaced)',
    labelNames: ['reason'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tradesync_process_' });
    const sent = this.#sentByType;
    this.eventsSent = new Counter({
      name: 'tradesync_events_sent_total',
      help: 'Live events handed to subscribers at fan-out, by event type: one per event per subscribed connection (a conflated subscription counts only the events its frames carry; events a session-scoped one then skips are included)',
      labelNames: ['type'],
      registers: [this.registry],
      collect() {
        // A scrape reads the running totals: counters only ever rise, so reset-and-set is exact.
        this.reset();
        for (const [type, count] of sent) this.inc({ type }, count);
      },
    });
  }

  /** An event of `type` was queued for `subscribers` connections (called once per event, not per connection). */
  countSent(type: string, subscribers: number): void {
    this.#sentByType.set(type, (this.#sentByType.get(type) ?? 0) + subscribers);
  }
}
