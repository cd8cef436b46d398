import { z } from 'zod';
import { StreamEvent } from './events.js';
import { REPLY_TYPES, type ClientMessageType, type EventMessage, type ServerMessage } from './messages.js';

/**
 * What answers what: the reply type of each client message (an `error` with the same
 * `id` may answer any of them), and the body of the REST read of a stream's events.
 * Clients key their requests on these, so a reply is typed by the request it answers.
 */

/** The reply type of each client message. */
export const REPLY_OF = {
  subscribe: 'subscribed',
  unsubscribe: 'unsubscribed',
  state_sync_request: 'state_sync_response',
  get_initial_state: 'initial_state',
  command: 'command_result',
  ping: 'pong',
  auth: 'authenticated',
} as const satisfies Record<ClientMessageType, (typeof REPLY_TYPES)[number]>;

/** A server message that is not a live event (it has one of `REPLY_TYPES`). */
export type ReplyMessage = Exclude<ServerMessage, EventMessage>;

/** The message that answers a client message of type `T`. */
export type ReplyTo<T extends ClientMessageType> = Extract<ReplyMessage, { type: (typeof REPLY_OF)[T] }>;

/** True for a live stream event, false for a reply, `connected` or `batch_update`. */
export function isEventMessage(message: ServerMessage): message is EventMessage {
  return !(REPLY_TYPES as readonly string[]).includes(message.type);
}

/** True when `message` is the kind of reply a request of type `type` expects. */
export function isReplyTo<T extends ClientMessageType>(type: T, message: ServerMessage): message is ReplyTo<T> {
  return message.type === REPLY_OF[type];
}

/** `GET /api/v1/streams/<stream>/events?after=&limit=`: the events after `after`, oldest first. */
export const StreamEventsPage = z.object({
  stream: z.string(),
  epoch: z.string(),
  /** The stream's last offset. */
  head: z.number().int().nonnegative(),
  /** The oldest offset still kept; older ones answer 410 HISTORY_TRIMMED. */
  first_offset: z.number().int().nonnegative(),
  events: z.array(StreamEvent),
});
export type StreamEventsPage = z.infer<typeof StreamEventsPage>;

/** The body of a failed REST request: `{success: false, error: {code, message}, ...details}`. */
export const RestErrorBody = z.looseObject({
  success: z.literal(false),
  error: z.object({ code: z.string(), message: z.string() }),
});
export type RestErrorBody = z.infer<typeof RestErrorBody>;
