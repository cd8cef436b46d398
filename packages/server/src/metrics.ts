import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
    help: 'CPU time spent computing stream state checksums',
    registers: [this.registry],
  });
  readonly errorsSent = new Counter({
    name: 'tradesync_errors_sent_total',
    help: 'Error replies sent to clients, by code',
    labelNames: ['code'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tradesync_process_' });
  }
}
