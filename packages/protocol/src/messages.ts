import { z } from 'zod';
import { IsoTime } from './decimal.js';
import { CHECKSUM_PATTERN } from './checksum.js';
import { StreamEvent } from './events.js';

/* ---------------------------------------------------------------------------
 * Client → server: `{id?, type, data?}`. Every reply echoes `id`.
 * ------------------------------------------------------------------------- */

export const ClientEnvelope = z.object({
  id: z.string().max(128).optional(),
  type: z.string().min(1).max(64),
  data: z.record(z.string(), z.unknown()).optional(),
});
export type ClientEnvelope = z.infer<typeof ClientEnvelope>;

export const StreamPositionSchema = z.object({
  epoch: z.string().max(128),
  offset: z.number().int().nonnegative(),
});

export const SubscribeData = z.object({
  stream: z.string(),
  params: z
    .object({
      session_id: z.string().max(128).optional(),
      /**
       * Conflate: at most this many frames per second carry this stream's events, each
       * frame holding only the newest event per entity. Only for `market:*` and
       * `indicators:*` streams (see CONFLATABLE_KINDS); offsets then jump.
       */
      max_rate: z.number().positive().max(1000).optional(),
    })
    .optional(),
  since: StreamPositionSchema.optional(),
});
export const UnsubscribeData = z.object({ stream: z.string() });
export const StateSyncRequestData = z.object({
  session_id: z.string().max(128).optional(),
  account: z.string().max(64).optional(),
});
export const INITIAL_STATE_PARTS = ['portfolio', 'balances', 'orders', 'subscriptions', 'connection'] as const;
export type InitialStatePart = (typeof INITIAL_STATE_PARTS)[number];
export const GetInitialStateData = z.object({
  include: z.array(z.string()).max(16).optional(),
  account: z.string().max(64).optional(),
});
export const CommandData = z.looseObject({
  action: z.string().min(1).max(64),
  command_id: z.string().max(128).optional(),
  account: z.string().max(64).optional(),
});
export type CommandData = z.infer<typeof CommandData>;
export const AuthData = z.object({ token: z.string().min(1).max(8192) });
export const PingData = z.record(z.string(), z.unknown());

/** The data schema of each client message type. */
export const CLIENT_MESSAGES = {
  subscribe: SubscribeData,
  unsubscribe: UnsubscribeData,
  state_sync_request: StateSyncRequestData,
  get_initial_state: GetInitialStateData,
  command: CommandData,
  ping: PingData,
  auth: AuthData,
} as const;
export type ClientMessageType = keyof typeof CLIENT_MESSAGES;
export type ClientMessageData<T extends ClientMessageType> = z.infer<(typeof CLIENT_MESSAGES)[T]>;

export function isClientMessageType(type: string): type is ClientMessageType {
  return Object.hasOwn(CLIENT_MESSAGES, type);
}

/* ---------------------------------------------------------------------------
 * Server → client. Every message has `type`, `sequence_number`, `timestamp`;
 * stream messages also `stream`, `epoch`, `offset`.
 * ------------------------------------------------------------------------- */

const base = {
  sequence_number: z.number().int().nonnegative(),
  timestamp: IsoTime,
};
const reply = { ...base, id: z.string().optional() };

export const ConnectedMessage = z.looseObject({
  type: z.literal('connected'),
  ...base,
  connection_id: z.uuid(),
  heartbeat_interval: z.number().int().positive(),
  server_version: z.string().optional(),
  auth_required: z.boolean().optional(),
  /** The server's clock when it accepted the socket. */
  server_time: IsoTime.optional(),
  /** How often `stream_position` comes for a stream that had events (a quiet one: every 6 of these); 0 or absent: never. */
  position_interval_ms: z.number().int().nonnegative().optional(),
});

/** A stream state's CRC-32 (see checksum.ts): 8 lowercase hex digits. */
export const Checksum = z.string().regex(CHECKSUM_PATTERN);

export const Snapshot = z.object({
  epoch: z.string(),
  offset: z.number().int().nonnegative(),
  state: z.record(z.string(), z.unknown()),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const SubscribedMessage = z.looseObject({
  type: z.literal('subscribed'),
  ...reply,
  stream: z.string(),
  epoch: z.string(),
  offset: z.number().int().nonnegative(),
  recovered: z.boolean(),
  events: z.array(StreamEvent).optional(),
  snapshot: Snapshot.optional(),
  /** The checksum of the state at `offset` (after the replayed `events`, or of the `snapshot`). */
  checksum: Checksum.optional(),
  /** The subscription's conflation rate, when it is conflated. */
  max_rate: z.number().positive().optional(),
  /** The session the subscription is scoped to (its snapshot, events and checksums are that session's; offsets jump). */
  session_id: z.string().optional(),
});
export type SubscribedMessage = z.infer<typeof SubscribedMessage>;

export const UnsubscribedMessage = z.looseObject({ type: z.literal('unsubscribed'), ...reply, stream: z.string() });

/** A stream whose part of a state sync could not be built (its part is null). */
export const FailedStream = z.object({ stream: z.string(), code: z.string(), message: z.string() });
export type FailedStream = z.infer<typeof FailedStream>;

/**
 * An account's whole picture. Each part comes from one stream; a part that could not be
 * built now (its stream's log cannot be re-read) is null and its stream is named in
 * `failed_streams`, while the rest is served.
 */
export const StateSyncData = z.looseObject({
  timestamp: IsoTime,
  account: z.string().optional(),
  session_id: z.string().nullable(),
  positions: z.array(z.record(z.string(), z.unknown())).nullable(),
  active_signals: z.array(z.record(z.string(), z.unknown())).nullable(),
  state_machine_state: z.array(z.record(z.string(), z.unknown())).nullable(),
  indicator_values: z.record(z.string(), z.record(z.string(), z.string())).nullable(),
  pending_orders: z.array(z.record(z.string(), z.unknown())).nullable(),
  streams: z.record(z.string(), StreamPositionSchema),
  /** The streams whose parts are null, with why; empty when `success`. */
  failed_streams: z.array(FailedStream),
});
export type StateSyncData = z.infer<typeof StateSyncData>;

/** `success: false` with `error` when a part could not be built (`UNAVAILABLE`); `data` then holds the parts that could. */
export const StateSyncResponseMessage = z.looseObject({
  type: z.literal('state_sync_response'),
  ...reply,
  success: z.boolean(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  data: StateSyncData,
});

export const InitialStateMessage = z.looseObject({
  type: z.literal('initial_state'),
  ...reply,
  success: z.literal(true),
  /** The account the parts describe. */
  account: z.string().optional(),
  data: z.record(z.string(), z.unknown()),
});

export const CommandResultMessage = z.looseObject({
  type: z.literal('command_result'),
  ...reply,
  success: z.boolean(),
  action: z.string().optional(),
  command_id: z.string().optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

export const PongMessage = z.looseObject({
  type: z.literal('pong'),
  ...reply,
  /** The `ping`'s data, echoed when it had any. */
  data: z.record(z.string(), z.unknown()).optional(),
});
export const AuthenticatedMessage = z.looseObject({
  type: z.literal('authenticated'),
  ...reply,
  subject: z.string().optional(),
  accounts: z.union([z.array(z.string()), z.literal('*')]),
  can_trade: z.boolean(),
});

export const ErrorMessage = z.looseObject({
  type: z.literal('error'),
  ...reply,
  success: z.literal(false),
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

/** A live event: a stream event with the per-connection envelope fields. */
export const EventMessage = z.looseObject({
  ...base,
  type: z.string(),
  stream: z.string(),
  epoch: z.string(),
  offset: z.number().int().positive(),
  data: z.record(z.string(), z.unknown()),
});
export type EventMessage = z.infer<typeof EventMessage>;

/**
 * Where a subscribed stream stands on this connection: every event up to `offset` has
 * been written before this message, and `checksum` is the state's at `offset`. Sent
 * every `position_interval_ms` for a stream that had events, every 6 intervals for a
 * quiet one.
 */
export const StreamPositionMessage = z.looseObject({
  type: z.literal('stream_position'),
  ...base,
  stream: z.string(),
  epoch: z.string(),
  offset: z.number().int().nonnegative(),
  checksum: Checksum,
});
export type StreamPositionMessage = z.infer<typeof StreamPositionMessage>;

/** A quiet stream (no events since its last position) gets a `stream_position` every this many intervals. */
export const POSITION_QUIET_EVERY = 6;

/** Events ready at the same moment, in one frame; each keeps its own stream, epoch and offset. */
export const BatchUpdateMessage = z.looseObject({
  type: z.literal('batch_update'),
  ...base,
  events: z.array(StreamEvent),
});

export const REPLY_TYPES = [
  'connected',
  'subscribed',
  'unsubscribed',
  'state_sync_response',
  'initial_state',
  'command_result',
  'pong',
  'authenticated',
  'error',
  'batch_update',
  'stream_position',
] as const;

const replySchemas = {
  connected: ConnectedMessage,
  subscribed: SubscribedMessage,
  unsubscribed: UnsubscribedMessage,
  state_sync_response: StateSyncResponseMessage,
  initial_state: InitialStateMessage,
  command_result: CommandResultMessage,
  pong: PongMessage,
  authenticated: AuthenticatedMessage,
  error: ErrorMessage,
  batch_update: BatchUpdateMessage,
  stream_position: StreamPositionMessage,
} as const;

export type ServerMessage =
  | z.infer<typeof ConnectedMessage>
  | z.infer<typeof SubscribedMessage>
  | z.infer<typeof UnsubscribedMessage>
  | z.infer<typeof StateSyncResponseMessage>
  | z.infer<typeof InitialStateMessage>
  | z.infer<typeof CommandResultMessage>
  | z.infer<typeof PongMessage>
  | z.infer<typeof AuthenticatedMessage>
  | z.infer<typeof ErrorMessage>
  | z.infer<typeof BatchUpdateMessage>
  | StreamPositionMessage
  | EventMessage;

/**
 * Validates any server message (used by clients at their edge). Returns the
 * parsed message, or the zod error for logging.
 */
export function parseServerMessage(value: unknown): { success: true; data: ServerMessage } | { success: false; error: z.ZodError } {
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  const schema: z.ZodType = typeof type === 'string' && Object.hasOwn(replySchemas, type)
    ? replySchemas[type as keyof typeof replySchemas]
    : EventMessage;
  const result = schema.safeParse(value);
  return result.success ? { success: true, data: result.data as ServerMessage } : { success: false, error: result.error };
}

/* ---------------------------------------------------------------------------
 * Typed sending. A sender names a message `type` and gives its fields; the
 * connection stamps the envelope (`type`, `id`, `sequence_number`, `timestamp`).
 * ------------------------------------------------------------------------- */

/** The schema of every server message `type` that is not a live event (live events are `EventMessage`). */
export const SERVER_MESSAGES = replySchemas;
export type ServerMessageType = keyof typeof SERVER_MESSAGES;
/** The parsed message of one server `type`. */
export type ServerMessageOf<T extends ServerMessageType> = z.infer<(typeof SERVER_MESSAGES)[T]>;

/** What the connection stamps on every message; a sender never sets these. */
export type EnvelopeField = 'type' | 'id' | 'sequence_number' | 'timestamp';

/**
 * Read-only all the way down: a sender only serializes what it is given, so it may
 * pass readonly arrays and records (a principal's accounts, a plan's events).
 */
export type DeepReadonly<T> = T extends readonly (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/**
 * The declared fields of a server message, without the envelope: exactly the keys its
 * schema names (the schemas are loose for readers, so older clients accept newer
 * fields; a sender gets no such index signature, so a misspelt or undeclared field,
 * a wrong type or a missing required field does not compile).
 */
export type ServerMessageFields<T extends ServerMessageType> = DeepReadonly<
  Omit<z.infer<z.ZodObject<(typeof SERVER_MESSAGES)[T]['shape'], z.core.$strip>>, EnvelopeField>
>;
