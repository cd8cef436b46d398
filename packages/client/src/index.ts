export { TradeSyncClient, httpBase, type ClientEvents, type CommandOptions, type CommandResult, type CommandUpdate, type StreamHandle } from './client.js';
export { getClient, releaseClient } from './registry.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { ClientClosedError, ConnectionLostError, RequestTimeoutError, ServerError, TradeSyncError } from './errors.js';
export type { ClientOptions, Logger, WebSocketConstructor, WebSocketLike } from './options.js';
export { StreamReplica, type LiveEvent, type LiveOutcome, type SubscribedReply, type SyncResult } from './replica.js';
export { describeStatus, type ClientStatus, type ConnectionState } from './status.js';
export type { StateChangeReason, StreamListener, SyncedInfo, SyncFailedInfo } from './subscription.js';
