/**
 * Generates docs/asyncapi.yaml, the AsyncAPI 3.0 description of the WebSocket contract
 * (docs/PROTOCOL.md). Every payload schema is generated from the zod schemas of
 * `@tradesync/protocol` (`z.toJSONSchema`), the same schemas the gateway and the SDK
 * validate with, so the document cannot drift from the wire. What a schema cannot say
 * (titles, when a message comes, what each error and close code means) is written
 * here, in tables typed by the protocol's own unions: a new message type, event type,
 * error code or close code does not compile until it is described.
 *
 *   npm run asyncapi      rewrites docs/asyncapi.yaml
 *
 * packages/server/test/specs.test.ts fails while the checked-in file differs from what
 * `renderAsyncApi()` returns.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { z } from 'zod';
import * as protocol from '@tradesync/protocol';
import {
  CLIENT_MESSAGES,
  ClientEnvelope,
  CloseCode,
  ErrorCode,
  ErrorMessage,
  EVENT_TYPES,
  EventMessage,
  INITIAL_STATE_PARTS,
  REPLY_OF,
  SERVER_MESSAGES,
  closeCodePolicy,
  type ClientMessageData,
  type ClientMessageType,
  type EventData,
  type EventType,
  type ServerMessageOf,
  type ServerMessageType,
} from '@tradesync/protocol';
import protocolPackage from '../packages/protocol/package.json' with { type: 'json' };

/** Where the generated document is checked in. */
export const ASYNCAPI_PATH = fileURLToPath(new URL('../docs/asyncapi.yaml', import.meta.url));
/** The command that regenerates it (named in the file's header and in the test's failure). */
export const REGENERATE_COMMAND = 'npm run asyncapi';

const CHANNEL = 'gateway';
const channelRef = { $ref: `#/channels/${CHANNEL}` };
/** A message as an operation names it: through the channel, as AsyncAPI 3 requires. */
const messageRef = (key: string) => ({ $ref: `#/channels/${CHANNEL}/messages/${key}` });
const schemaRef = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/* ---------------------------------------------------------------------------
 * What the schemas cannot say, one table per union of the protocol.
 * ------------------------------------------------------------------------- */

interface MessageDoc {
  readonly title: string;
  readonly summary: string;
  readonly description?: string;
}

type ClientDocs = {
  readonly [T in ClientMessageType]: MessageDoc & {
    readonly examples: readonly { readonly name: string; readonly summary: string; readonly payload: { id?: string; type: T; data?: ClientMessageData<T> } }[];
  };
};

const CLIENT_DOCS: ClientDocs = {
  subscribe: {
    title: 'Subscribe to a stream',
    summary: 'Start receiving a stream: the reply carries its state (a snapshot) or, with `since`, exactly the events missed since then.',
    description: [
      'Without `since` the `subscribed` reply carries a `snapshot` (`recovered: false`). With `since` still in the history window it is',
      '`recovered: true` with the missed `events`, in order; otherwise (another epoch, an offset past the head, trimmed history, more',
      'missed events than `history.max_recovery_events`) a snapshot. The live events that follow the reply start at its `offset + 1`:',
      'no gap, no duplicate.',
      '',
      '`params.max_rate` conflates a `market:*` or `indicators:*` subscription (other kinds answer `INVALID_PARAMS`); offsets then jump.',
      '`params.session_id` scopes it to one trading session (its snapshot, events and checksums); offsets then jump too.',
    ].join('\n'),
    examples: [
      { name: 'snapshot', summary: 'Subscribe and take a snapshot', payload: { id: 's1', type: 'subscribe', data: { stream: 'orders:demo' } } },
      {
        name: 'resume',
        summary: 'Resume from the last position applied',
        payload: { id: 's2', type: 'subscribe', data: { stream: 'orders:demo', since: { epoch: '09acd7cdb71770b0', offset: 1 } } },
      },
      { name: 'conflated', summary: 'At most 10 frames a second of market data', payload: { id: 'm1', type: 'subscribe', data: { stream: 'market:BTC-USD', params: { max_rate: 10 } } } },
    ],
  },
  unsubscribe: {
    title: 'Unsubscribe from a stream',
    summary: 'Stop receiving a stream; no event of it follows the `unsubscribed` reply.',
    examples: [{ name: 'unsubscribe', summary: 'Leave a stream', payload: { id: 'u1', type: 'unsubscribe', data: { stream: 'orders:demo' } } }],
  },
  state_sync_request: {
    title: 'Ask for the whole picture of an account',
    summary: "One account's positions, pending signals, strategy instances, indicators and open orders, with each stream's position.",
    description: "`account` defaults to the token's only account, else the server's `default_account`; `session_id` filters signals, strategy instances and orders.",
    examples: [{ name: 'account', summary: 'The demo account', payload: { id: 'y1', type: 'state_sync_request', data: { account: 'demo' } } }],
  },
  get_initial_state: {
    title: 'Ask for parts of the initial state',
    summary: `The parts named in \`include\` (${INITIAL_STATE_PARTS.map((p) => `\`${p}\``).join(', ')}; all when omitted or empty).`,
    description: 'An unknown part is answered with an `error` of code `INVALID_INCLUDE`.',
    examples: [{ name: 'parts', summary: 'Open orders and connection counters', payload: { id: 'i1', type: 'get_initial_state', data: { include: ['orders', 'connection'] } } }],
  },
  command: {
    title: 'Send a command to the engine',
    summary: 'Execute or reject a signal, cancel an order…: the `command_result` comes first, then the events the command caused.',
    description: 'A `command_id` makes a repeat harmless (the engine executes it once). Needs a token with `trade: true` when auth is on.',
    examples: [
      { name: 'execute', summary: 'Execute a signal', payload: { id: 'c1', type: 'command', data: { action: 'execute_signal', command_id: 'cmd-42', signal_id: 'sig-1' } } },
    ],
  },
  ping: {
    title: 'Application-level ping',
    summary: 'Answered with `pong` (echoing `data`). Browsers cannot see protocol pings, so clients send one every heartbeat interval.',
    examples: [{ name: 'ping', summary: 'A ping', payload: { id: 'p1', type: 'ping' } }],
  },
  auth: {
    title: 'Authenticate',
    summary: 'Give a JWT (or pass it as `?token=` on the URL); answered with `authenticated`, or a close with 4001 for a bad token.',
    description: [
      'Until authenticated, every message but `auth` and `ping` gets `UNAUTHORIZED`; ten seconds without authenticating closes with 4001.',
      'A fresh token before the current one expires extends the session in place (expiry closes with 4101); a token for other accounts',
      'drops the subscriptions it may not read. When the gateway cannot fetch its JWKS the answer is `UNAVAILABLE` and a close with 1013.',
    ].join('\n'),
    examples: [{ name: 'token', summary: 'A JWT', payload: { id: 'a1', type: 'auth', data: { token: 'eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl' } } }],
  },
};

type ServerDocs = {
  readonly [T in ServerMessageType]: MessageDoc & {
    readonly examples?: readonly { readonly name: string; readonly summary: string; readonly payload: ServerMessageOf<T> }[];
  };
};

const SERVER_DOCS: ServerDocs = {
  connected: {
    title: 'Connection accepted',
    summary: 'The first message on every connection (`sequence_number` 0): its id, the heartbeat interval and how often `stream_position` comes.',
    description: [
      '`heartbeat_interval` is in milliseconds: the server sends a WebSocket ping at least that often and drops a peer silent for 1.5',
      'intervals (close 4000). `position_interval_ms` says how often `stream_position` comes; 0 or absent: never.',
    ].join('\n'),
    examples: [
      {
        name: 'connected',
        summary: 'A gateway on loopback without auth',
        payload: {
          type: 'connected',
          sequence_number: 0,
          timestamp: '2026-11-29T17:58:15.731Z',
          connection_id: '86961a80-6d1e-45da-be7d-794ceedd2b50',
          heartbeat_interval: 30000,
          position_interval_ms: 5000,
          auth_required: false,
          server_time: '2026-11-29T17:58:15.731Z',
        },
      },
    ],
  },
  subscribed: {
    title: 'Subscribed',
    summary: "The stream's position with a snapshot (`recovered: false`) or the missed events (`recovered: true`), and the checksum of the state at `offset`.",
    description:
      'Also sent unrequested (no `id`, `recovered: false`, a new epoch\'s snapshot) when a stream\'s history vanished while subscribed: the client replaces its state.',
    examples: [
      {
        name: 'snapshot',
        summary: 'A snapshot of open orders',
        payload: {
          type: 'subscribed',
          id: 's1',
          sequence_number: 1,
          timestamp: '2026-11-29T17:58:15.763Z',
          stream: 'orders:demo',
          recovered: false,
          epoch: '09acd7cdb71770b0',
          offset: 1,
          snapshot: {
            epoch: '09acd7cdb71770b0',
            offset: 1,
            state: {
              orders: {
                'ord-1': {
                  order_id: 'ord-1',
                  symbol: 'BTC-USD',
                  side: 'buy',
                  order_type: 'limit',
                  quantity: '0.5',
                  price: '42000.00',
                  filled_quantity: '0',
                  status: 'open',
                  session_id: 's1',
                  created_at: '2026-11-29T17:58:15.734Z',
                },
              },
            },
          },
          checksum: '1a875991',
        },
      },
    ],
  },
  unsubscribed: {
    title: 'Unsubscribed',
    summary: 'No event of the stream follows.',
    examples: [{ name: 'unsubscribed', summary: 'Left a stream', payload: { type: 'unsubscribed', id: 'u1', sequence_number: 2, timestamp: '2026-11-29T17:58:15.790Z', stream: 'orders:demo' } }],
  },
  state_sync_response: {
    title: 'The whole picture of an account',
    summary: "`active_signals` are the pending signals, `state_machine_state` the strategy instances, `streams` where each stream's data stands.",
    description: 'A part whose stream could not be read is `null` (never an empty list), its stream is absent from `streams` and named in `failed_streams`; `success` is then false.',
  },
  initial_state: {
    title: 'The parts of the initial state asked for',
    summary: '`data` holds just the parts named in `include` (all when omitted).',
  },
  command_result: {
    title: 'The result of a command',
    summary: 'Comes before the events the command caused; `error` says why it failed.',
  },
  pong: {
    title: 'Pong',
    summary: "The answer to `ping`, echoing its `data`.",
    examples: [{ name: 'pong', summary: 'A pong', payload: { type: 'pong', id: 'p1', sequence_number: 6, timestamp: '2026-11-29T17:58:15.835Z' } }],
  },
  authenticated: {
    title: 'Authenticated',
    summary: 'Who the token names, the accounts it may read and whether it may trade.',
    description: 'Also sent unrequested right after `connected` when the token came as `?token=` on the URL.',
    examples: [
      { name: 'trader', summary: 'A trader on one account', payload: { type: 'authenticated', id: 'a1', sequence_number: 1, timestamp: '2026-11-29T17:58:16.002Z', subject: 'trader-7', accounts: ['demo'], can_trade: true } },
    ],
  },
  error: {
    title: 'Error',
    summary: 'A request that failed, or a frame the server could not take. A bad message never closes the connection unless it is abuse (size, rate).',
    examples: [
      {
        name: 'invalid-stream',
        summary: 'A stream of an unknown kind',
        payload: {
          type: 'error',
          id: 'x',
          sequence_number: 8,
          timestamp: '2026-11-29T17:58:15.837Z',
          success: false,
          error: { code: 'INVALID_STREAM', message: 'unknown or malformed stream "foo:bar"' },
        },
      },
    ],
  },
  batch_update: {
    title: 'Events ready at the same moment',
    summary: 'Live events that became ready together (one producer request, one tick of the event loop), each with its own stream, epoch, offset and timestamp.',
    description: 'No event is held back to fill a batch: a batch is written on the next turn of the event loop.',
  },
  stream_position: {
    title: 'Where a stream stands on this connection',
    summary: 'Every event up to `offset` has been written before it; `checksum` is the CRC-32 of the canonical JSON of the state at `offset`.',
    description: [
      'Sent every `position_interval_ms` for a stream that had events since its last position, every 6 intervals for a quiet one. A',
      'replica behind `offset` lost events (resume with `since`); at `offset` with another checksum it is wrong (take a snapshot). No',
      'position for two intervals marks the stream stale.',
    ].join('\n'),
    examples: [
      {
        name: 'position',
        summary: 'Open orders at offset 2',
        payload: { type: 'stream_position', sequence_number: 3, timestamp: '2026-12-02T18:59:03.136Z', stream: 'orders:demo', epoch: '031eb1805e6e57cf', offset: 2, checksum: '2de79d04' },
      },
    ],
  },
};

type EventDocs = {
  readonly [T in EventType]: {
    readonly summary: string;
    readonly example?: { readonly stream: string; readonly data: EventData<T> };
  };
};

const EVENT_DOCS: EventDocs = {
  'order:updated': {
    summary: 'The whole order; a closed status (filled, cancelled, rejected, expired) removes it from the open orders.',
    example: {
      stream: 'orders:demo',
      data: {
        order_id: 'ord-2',
        symbol: 'BTC-USD',
        side: 'buy',
        order_type: 'limit',
        quantity: '0.5',
        price: '42000.00',
        filled_quantity: '0',
        status: 'open',
        session_id: 's1',
        created_at: '2026-11-29T17:58:15.763Z',
      },
    },
  },
  'order:closed': { summary: 'An order left the open orders.' },
  'balance:updated': { summary: 'The whole balance of one currency.' },
  'position:updated': { summary: 'The whole position of one symbol.' },
  'position:closed': { summary: 'A position was closed.' },
  'portfolio:updated': { summary: 'The portfolio totals: value, P&L, heat and available capacity.' },
  'campaign:updated': { summary: 'The whole campaign.' },
  'signal:new': { summary: 'The whole new signal.' },
  'signal:executed': { summary: 'A signal was executed: its id plus whatever changed.' },
  'signal:rejected': { summary: 'A signal was rejected: its id plus whatever changed.' },
  pattern_detected: { summary: 'The whole pattern; `data.full_details_url` links to `GET /api/v1/patterns/{id}`.' },
  instance_added: { summary: 'The whole new strategy instance.' },
  state_change: { summary: 'A strategy instance moved to another state.' },
  instance_removed: { summary: 'A strategy instance was removed.' },
  full_update: { summary: 'Every strategy instance: replaces them all.' },
  'indicator:updated': { summary: 'The newest value of one indicator of one symbol.' },
  liquidation_alert: { summary: 'A liquidation alert (the stream keeps the newest 100, by id).' },
  reconciliation_mismatch: { summary: 'A reconciliation mismatch (the stream keeps the newest 100, by id).' },
  'market:tick': {
    summary: 'The last price of a symbol.',
    example: { stream: 'market:BTC-USD', data: { symbol: 'BTC-USD', price: '42000.40', timestamp: '2026-12-02T18:59:03.156Z' } },
  },
};

const ERROR_DOCS: { readonly [C in ErrorCode]: { readonly when: string; readonly connection: string } } = {
  INVALID_MESSAGE: { when: 'not JSON, a missing or wrongly typed field', connection: 'stays open' },
  UNKNOWN_TYPE: { when: 'unknown `type`', connection: 'stays open' },
  INVALID_STREAM: { when: 'a malformed stream name or an unknown kind', connection: 'stays open' },
  INVALID_PARAMS: { when: 'a subscription parameter that does not apply (`max_rate` on a stream that is never conflated)', connection: 'stays open' },
  INVALID_INCLUDE: { when: 'an unknown `get_initial_state` part', connection: 'stays open' },
  INVALID_EVENT: { when: '(REST publish) an event type of another kind, or invalid data', connection: '—' },
  UNAUTHORIZED: { when: 'not authenticated', connection: 'stays open (closed with 4001 for a bad token)' },
  FORBIDDEN: { when: 'the token does not grant the account or action', connection: 'stays open' },
  ORIGIN_NOT_ALLOWED: { when: '(REST, 403) a request from a web page of a foreign origin, or naming a foreign `Host`', connection: '—' },
  RATE_LIMITED: {
    when: 'more than `limits.messages_per_second` (burst `message_burst`); the message is dropped',
    connection: 'stays open; a flood that goes on past the burst is closed with 1008',
  },
  PAYLOAD_TOO_LARGE: { when: 'a frame over `limits.max_payload_bytes`', connection: 'closed with 1009' },
  TOO_MANY_SUBSCRIPTIONS: { when: 'more than `limits.max_subscriptions`', connection: 'stays open' },
  TIMEOUT: { when: 'the engine did not answer a command in time (it may still run once)', connection: 'stays open' },
  UNKNOWN_COMMAND: { when: 'no engine accepts this command', connection: 'stays open' },
  NOT_FOUND: { when: '(REST, 404) the entity asked for does not exist', connection: '—' },
  HISTORY_TRIMMED: { when: '(REST, 410) the events asked for are no longer kept', connection: '—' },
  UNAVAILABLE: { when: 'the log (engine), or the token keys, cannot be reached', connection: 'stays open (1013 when the token cannot be checked)' },
  INTERNAL: { when: 'an unexpected server fault', connection: 'stays open' },
};

/** What each close code means and what a client should do; `closeCodePolicy` (in `x-close-codes`) is what the SDK does. */
const CLOSE_DOCS: { readonly [K in keyof typeof CloseCode]: { readonly meaning: string; readonly should: string } } = {
  NORMAL: { meaning: 'normal closure', should: '—' },
  GOING_AWAY: { meaning: 'the server is shutting down', should: 'reconnect and resume' },
  INVALID_PAYLOAD: { meaning: 'a text frame that is not valid UTF-8', should: 'fix the client' },
  POLICY_VIOLATION: { meaning: 'abuse (a sustained message flood)', should: 'reconnect and resume, slower' },
  MESSAGE_TOO_BIG: { meaning: 'a frame over `limits.max_payload_bytes`', should: 'fix the client' },
  TRY_AGAIN_LATER: { meaning: 'the token keys (JWKS) could not be fetched; the token may be fine', should: 'reconnect with backoff, same token' },
  HEARTBEAT_TIMEOUT: { meaning: 'heartbeat timeout: the peer was silent for 1.5 intervals', should: 'reconnect and resume' },
  UNAUTHORIZED: { meaning: 'a bad token, or ten seconds without authenticating', should: 'get a token, then reconnect' },
  SLOW_CONSUMER: { meaning: 'slow consumer: the send buffer passed `limits.max_buffered_bytes`', should: 'reconnect and resume' },
  STATE_INVALIDATED: {
    meaning: "state invalidated: a stream's history vanished (new epoch) and the new snapshot does not fit the send buffer",
    should: 'reconnect, take snapshots',
  },
  TOKEN_EXPIRED: { meaning: "the token expired (at its `exp`, by the gateway's clock)", should: 'get a new token, then reconnect' },
  REJECTED: { meaning: 'refused for good (reserved: this gateway sends none; a proxy or auth layer in front of it may)', should: 'stop' },
};

/** Answers to the upgrade itself, before a WebSocket exists. */
const UPGRADE_REFUSALS = [
  [403, 'the upgrade comes from a web page of a foreign `Origin`, or names a `Host` a loopback gateway does not serve'],
  [404, 'any path but `/ws`'],
  [429, 'the client address already holds `limits.max_connections_per_ip` sockets'],
  [503, 'the node holds `limits.max_connections` sockets'],
] as const;

const closeCodes = (Object.keys(CLOSE_DOCS) as (keyof typeof CloseCode)[])
  .map((name) => ({ code: CloseCode[name], name, policy: closeCodePolicy(CloseCode[name]), ...CLOSE_DOCS[name] }))
  .sort((a, b) => a.code - b.code);

const table = (head: readonly string[], rows: readonly (readonly (string | number)[])[]): string =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

/* ---------------------------------------------------------------------------
 * Payload schemas, from the zod schemas.
 * ------------------------------------------------------------------------- */

const pascal = (type: string): string =>
  type
    .split(/[:_]/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
/** The component key of a message: AsyncAPI keys allow no `:`. */
const messageKey = (type: string): string => type.replaceAll(':', '.');
const clientSchemaId = (type: ClientMessageType): string => `${pascal(type)}Message`;
const eventSchemaId = (type: EventType): string => `${pascal(type)}Event`;

/** The client envelope of one message type; `data` is required when the type's schema refuses `{}` (the gateway reads a missing `data` as `{}`). */
function clientPayload(type: ClientMessageType): z.ZodType {
  const data: z.ZodType = CLIENT_MESSAGES[type];
  return z.object({
    id: ClientEnvelope.shape.id,
    type: z.literal(type),
    data: data.safeParse({}).success ? data.optional() : data,
  });
}

/** The live event of one type: the event envelope with its `type` fixed and its `data` schema. */
const eventPayload = (type: EventType): z.ZodType => EventMessage.extend({ type: z.literal(type), data: EVENT_TYPES[type].data });

/** `error.code` is one of the contract's codes: said in the document, where the reader's schema only asks for a string. */
const errorPayload = ErrorMessage.extend({
  error: ErrorMessage.shape.error.extend({ code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]) }),
});

type JsonSchema = { [key: string]: unknown };

/**
 * Every payload as a component schema. The protocol's exported schemas are registered
 * under their export names, so a payload that uses one (an `Order`, a `Decimal`) refers
 * to it instead of repeating it; components no payload reaches are left out.
 */
function payloadSchemas(): { payloads: Record<string, { id: string; schema: z.ZodType }>; schemas: Record<string, JsonSchema> } {
  const registry = z.registry<{ id: string }>();
  const payloads: Record<string, { id: string; schema: z.ZodType }> = {};
  const add = (schema: z.ZodType, id: string) => {
    if (registry.has(schema)) throw new Error(`schema ${id} is registered twice`);
    registry.add(schema, { id });
  };
  const addPayload = (type: string, schema: z.ZodType, id: string) => {
    add(schema, id);
    payloads[type] = { id, schema };
  };
  for (const type of Object.keys(CLIENT_MESSAGES) as ClientMessageType[]) addPayload(type, clientPayload(type), clientSchemaId(type));
  for (const [type, schema] of Object.entries(SERVER_MESSAGES) as [ServerMessageType, z.ZodType][]) {
    addPayload(type, type === 'error' ? errorPayload : schema, `${pascal(type)}Message`);
  }
  for (const type of Object.keys(EVENT_TYPES) as EventType[]) addPayload(type, eventPayload(type), eventSchemaId(type));
  // (`ErrorMessage` itself is left out: `errorPayload` stands for it under its name.)
  for (const [name, value] of Object.entries(protocol)) {
    if (value instanceof z.ZodType && !registry.has(value) && value !== ErrorMessage) add(value, name.replace(/Schema$/, ''));
  }

  // Draft-07 is the JSON Schema AsyncAPI's schema format extends. The input side, because
  // that is how every schema here is used: the gateway parses client messages with them
  // and clients parse server messages with them (`parseServerMessage`).
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-7', io: 'input', uri: (id) => schemaRef(id).$ref });
  const all: Record<string, JsonSchema> = {};
  for (const [id, { $schema: _schema, $id: _id, ...schema }] of Object.entries(schemas)) all[id] = schema;

  // Keep what the payloads reach, in a stable order: payloads first, then the rest by name.
  const reached = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        const id = value.slice(value.lastIndexOf('/') + 1);
        if (!reached.has(id)) {
          reached.add(id);
          visit(all[id]);
        }
      } else visit(value);
    }
  };
  const payloadIds = Object.values(payloads).map((p) => p.id);
  for (const id of payloadIds) {
    reached.add(id);
    visit(all[id]);
  }
  const order = [...payloadIds, ...[...reached].filter((id) => !payloadIds.includes(id)).sort()];
  return { payloads, schemas: Object.fromEntries(order.map((id) => [id, all[id] ?? {}])) };
}

/* ---------------------------------------------------------------------------
 * The document.
 * ------------------------------------------------------------------------- */

const REQUEST_ID = { $ref: '#/components/correlationIds/requestId' };
const repliesWithId = new Set<string>(Object.values(REPLY_OF)).add('error');

function buildAsyncApi(): Record<string, unknown> {
  const { payloads, schemas } = payloadSchemas();
  const messages: Record<string, unknown> = {};
  const payloadOf = (type: string) => {
    const payload = payloads[type];
    if (!payload) throw new Error(`no payload schema for ${type}`);
    return payload;
  };
  /** Examples are checked against their message's schema here: the parser does not check them. */
  const examples = (type: string, list: readonly { name: string; summary: string; payload: unknown }[] | undefined) => {
    if (!list) return {};
    for (const e of list) {
      const result = payloadOf(type).schema.safeParse(e.payload);
      if (!result.success) throw new Error(`example "${e.name}" of ${type} does not match its schema: ${z.prettifyError(result.error)}`);
    }
    return { examples: list.map((e) => ({ name: e.name, summary: e.summary, payload: e.payload })) };
  };

  for (const [type, doc] of Object.entries(CLIENT_DOCS) as [ClientMessageType, ClientDocs[ClientMessageType]][]) {
    messages[messageKey(type)] = {
      name: type,
      title: doc.title,
      summary: doc.summary,
      ...(doc.description ? { description: doc.description } : {}),
      correlationId: REQUEST_ID,
      payload: schemaRef(payloadOf(type).id),
      ...examples(type, doc.examples),
    };
  }
  for (const [type, doc] of Object.entries(SERVER_DOCS) as [ServerMessageType, ServerDocs[ServerMessageType]][]) {
    const description = type === 'error'
      ? [doc.description, table(['code', 'when', 'connection'], Object.entries(ERROR_DOCS).map(([code, d]) => [`\`${code}\``, d.when, d.connection]))].filter(Boolean).join('\n\n')
      : doc.description;
    messages[messageKey(type)] = {
      name: type,
      title: doc.title,
      summary: doc.summary,
      ...(description ? { description } : {}),
      ...(repliesWithId.has(type) ? { correlationId: REQUEST_ID } : {}),
      payload: schemaRef(payloadOf(type).id),
      ...examples(type, doc.examples),
    };
  }
  for (const [type, doc] of Object.entries(EVENT_DOCS) as [EventType, EventDocs[EventType]][]) {
    const kind = EVENT_TYPES[type].kind;
    const example = doc.example;
    messages[messageKey(type)] = {
      name: type,
      title: `Live event \`${type}\``,
      summary: doc.summary,
      description: `An event of \`${kind === 'market' ? 'market:<symbol>' : `${kind}:<account>`}\` streams, alone or in a \`batch_update\`.`,
      payload: schemaRef(payloadOf(type).id),
      ...examples(
        type,
        example && [
          {
            name: messageKey(type),
            summary: `A live \`${type}\``,
            payload: { sequence_number: 2, type, stream: example.stream, epoch: '09acd7cdb71770b0', offset: 2, timestamp: '2026-11-29T17:58:15.765Z', data: example.data },
          },
        ],
      ),
    };
  }

  const channelMessages = Object.fromEntries(Object.keys(messages).map((key) => [key, { $ref: `#/components/messages/${key}` }]));
  const eventKeys = (Object.keys(EVENT_TYPES) as EventType[]).map(messageKey);

  const operations: Record<string, unknown> = {};
  for (const type of Object.keys(CLIENT_MESSAGES) as ClientMessageType[]) {
    operations[`receive${pascal(type)}`] = {
      action: 'receive',
      channel: channelRef,
      title: CLIENT_DOCS[type].title,
      summary: `The client sends \`${type}\`; the gateway answers \`${REPLY_OF[type]}\` (or \`error\`) echoing its \`id\`.`,
      messages: [messageRef(messageKey(type))],
      reply: { channel: channelRef, messages: [messageRef(messageKey(REPLY_OF[type])), messageRef('error')] },
    };
  }
  const send = (name: string, summary: string, keys: readonly string[]) => {
    operations[name] = { action: 'send', channel: channelRef, summary, messages: keys.map(messageRef) };
  };
  send('sendConnected', 'The first message on every connection.', ['connected']);
  send('sendAuthenticated', 'Right after `connected` when the token came as `?token=` on the URL.', ['authenticated']);
  send('sendEvent', "A subscribed stream's live events, alone or together in a `batch_update`; offsets follow the subscription's.", [...eventKeys, 'batch_update']);
  send('sendStreamPosition', 'Where each subscribed stream stands on this connection, with its checksum.', ['stream_position']);
  send('sendSubscribedReset', "Unrequested: a stream's history vanished; the new epoch's snapshot replaces the client's state.", ['subscribed']);
  send('sendError', 'An error that answers no request: a frame that is not JSON, a message dropped by the rate limiter.', ['error']);

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'TradeSync WebSocket API',
      version: protocolPackage.version,
      description: [
        'The real-time half of the TradeSync gateway: streams of trading state (orders, portfolio, signals, strategy state machines,',
        'indicators, alerts, market data) with snapshots, exact resume and checksums. The REST half is described by the OpenAPI',
        'document the gateway serves at `GET /openapi.json`; docs/PROTOCOL.md explains both with captured examples.',
        '',
        `Generated from the zod schemas of \`@tradesync/protocol\` by scripts/asyncapi.ts (\`${REGENERATE_COMMAND}\`).`,
      ].join('\n'),
    },
    defaultContentType: 'application/json',
    servers: {
      local: {
        host: '127.0.0.1:8000',
        protocol: 'ws',
        title: 'A gateway on its default address',
        description: 'Binds loopback by default, where auth is off; on any other address auth is required (unless started with `--insecure`).',
        security: [{ $ref: '#/components/securitySchemes/token' }],
      },
    },
    channels: {
      [CHANNEL]: {
        address: '/ws',
        title: 'The gateway socket',
        description: channelDescription(),
        servers: [{ $ref: '#/servers/local' }],
        messages: channelMessages,
        bindings: {
          ws: {
            method: 'GET',
            query: { type: 'object', properties: { token: { type: 'string', description: 'A JWT, instead of an `auth` message.' } } },
            bindingVersion: '0.1.0',
          },
        },
        'x-close-codes': closeCodes.map(({ code, name, policy, meaning }) => ({ code, name, policy, meaning })),
      },
    },
    operations,
    components: {
      schemas,
      messages,
      correlationIds: {
        requestId: { description: 'The `id` a client gives a message; every reply to it echoes it.', location: '$message.payload#/id' },
      },
      securitySchemes: {
        token: {
          type: 'httpApiKey',
          name: 'token',
          in: 'query',
          description: [
            'A JWT (HS256 with a shared secret, or any asymmetric algorithm through a JWKS URL) as `?token=` on the URL, or in an `auth` message.',
            'Claims: `sub` (who, logged), `accounts` (names the token may read and use, or `"*"`), `trade` (may send commands),',
            '`publish` (may `POST /api/v1/events`). Required when the gateway binds a non-loopback address.',
          ].join('\n'),
        },
      },
    },
  };
}

function channelDescription(): string {
  return [
    'JSON text frames. Times are UTC ISO-8601 ending in `Z`; money, prices and quantities are decimal strings, never floats.',
    '',
    'Client → server: `{"id"?: string, "type": string, "data"?: object}`; every reply echoes `id`. Every server → client message has',
    '`type`, `sequence_number` (per connection: `connected` is 0, then +1 for each message) and `timestamp`; one that belongs to a',
    'stream also has `stream`, `epoch` and `offset`. Streams are `<kind>:<account>` (kinds `portfolio`, `orders`, `signals`,',
    '`state_machines`, `indicators`, `alerts`) and public `market:<symbol>`; offsets are dense (1, 2, 3, …) and the epoch changes',
    'only when the history is lost.',
    '',
    'Close codes. 4000–4099 mean resume (reconnect with backoff, resubscribe with `since`), 4100–4199 re-authenticate, 4200–4299',
    'stop; the last column is `closeCodePolicy(code)` of `@tradesync/protocol`, what the SDK does (also in `x-close-codes`, as data):',
    '',
    table(['code', 'meaning', 'client should', 'policy'], closeCodes.map((c) => [c.code, c.meaning, c.should, `\`${c.policy}\``])),
    '',
    'Upgrades refused before a WebSocket exists get a plain HTTP answer:',
    '',
    table(['status', 'when'], UPGRADE_REFUSALS),
  ].join('\n');
}

/**
 * The document as checked in: YAML under a header that says how it was made. Written
 * with YAML 1.1's rules for plain scalars, so strings a 1.1 reader (js-yaml, PyYAML)
 * would take for a date or a boolean (`2026-11-29T17:58:15.731Z`, `on`) are quoted.
 */
export function renderAsyncApi(): string {
  const header = [
    '# Generated by scripts/asyncapi.ts from the zod schemas of @tradesync/protocol. Do not edit:',
    `# change the schemas or the generator, then run \`${REGENERATE_COMMAND}\`.`,
  ].join('\n');
  return `${header}\n${stringify(buildAsyncApi(), { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' })}`;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(ASYNCAPI_PATH, renderAsyncApi());
  console.log(`wrote ${ASYNCAPI_PATH}`);
}
