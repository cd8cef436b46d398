/**
 * Every error code and WebSocket close code of the wire contract, in one place.
 * The client's retry policy reads the close-code ranges below.
 */

/** Error codes carried in `{type: "error", error: {code, message}}` and in failed `command_result`s. */
export const ErrorCode = {
  /** The frame is not JSON, or a field has the wrong type or is missing. */
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  /** `type` names no message the server knows. */
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  /** The stream name is malformed or of an unknown kind. */
  INVALID_STREAM: 'INVALID_STREAM',
  /** A subscription parameter does not apply to this stream (e.g. `max_rate` on a stream that is never conflated). */
  INVALID_PARAMS: 'INVALID_PARAMS',
  /** `get_initial_state` asked for a part that does not exist. */
  INVALID_INCLUDE: 'INVALID_INCLUDE',
  /** The event type does not belong to the stream's kind, or its data is invalid. */
  INVALID_EVENT: 'INVALID_EVENT',
  /** No valid token where one is required. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The token is valid but does not grant this account or action. */
  FORBIDDEN: 'FORBIDDEN',
  /** (HTTP 403) The request came from a web page whose origin is not allowed (`allowed_origins`), or named a host the gateway does not serve. */
  ORIGIN_NOT_ALLOWED: 'ORIGIN_NOT_ALLOWED',
  /** Too many messages on this connection (the message was dropped), or too many requests from this address. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The frame is larger than the server accepts; the connection is closed with 1009. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** The connection already has as many subscriptions as it may. */
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  /** The engine did not answer a command in time (the command may still run once). */
  TIMEOUT: 'TIMEOUT',
  /** The command action is unknown, or no engine accepts commands. */
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  /** (REST, 404) The entity asked for does not exist (e.g. a pattern id no signals stream holds). */
  NOT_FOUND: 'NOT_FOUND',
  /** The requested history is no longer kept; take a snapshot instead. */
  HISTORY_TRIMMED: 'HISTORY_TRIMMED',
  /** The log (engine) cannot be reached; try again later. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** An unexpected server fault; the connection stays usable. */
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * WebSocket close codes. 4000–4099: transient, resume (reconnect with backoff and
 * resubscribe with `since`). 4100–4199: re-authenticate before reconnecting.
 * 4200–4299: do not reconnect. This gateway sends none of that last range (it refuses
 * nobody for good); the range is kept for what may stand in front of it (a proxy, an
 * auth layer), so a client stops rather than retries when one is used.
 */
export const CloseCode = {
  /** Normal closure (client or server shutting down cleanly). */
  NORMAL: 1000,
  /** The server is going away (restart); reconnect and resume. */
  GOING_AWAY: 1001,
  /** Policy violation: abuse such as a sustained message flood. */
  POLICY_VIOLATION: 1008,
  /** A text frame that is not valid UTF-8 (closed by the WebSocket layer). */
  INVALID_PAYLOAD: 1007,
  /** A frame larger than the server accepts. */
  MESSAGE_TOO_BIG: 1009,
  /** The server cannot serve this client right now (e.g. the token keys cannot be fetched); reconnect later. */
  TRY_AGAIN_LATER: 1013,
  /** The peer missed two heartbeats. */
  HEARTBEAT_TIMEOUT: 4000,
  /** The client could not keep up: its send buffer passed the limit. Reconnect and resume. */
  SLOW_CONSUMER: 4008,
  /**
   * The server invalidated this connection's state: reconnect and take snapshots. Sent
   * when a stream's history vanished (new epoch) and the subscriber's send buffer cannot
   * take the new snapshot in place (see the server's Fanout.reset).
   */
  STATE_INVALIDATED: 4009,
  /** No token, or an invalid or expired one. Get a new token before reconnecting. */
  UNAUTHORIZED: 4001,
  /** Authentication expired during the session. */
  TOKEN_EXPIRED: 4101,
  /**
   * Refused for good; do not reconnect. Not sent by this gateway (see the range note
   * above): named for clients, which stop on the whole 4200–4299 range.
   */
  REJECTED: 4200,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** What a client should do after a close with this code. */
export function closeCodePolicy(code: number): 'resume' | 'reauthenticate' | 'stop' {
  if (code === CloseCode.UNAUTHORIZED || (code >= 4100 && code <= 4199)) return 'reauthenticate';
  if (code >= 4200 && code <= 4299) return 'stop';
  return 'resume';
}
