export { createTradeSync, useTradeSync, TRADESYNC_CLIENT, type TradeSyncPlugin } from './plugin.js';
export { useStream, type StreamRefs, type UseStreamOptions, type UseStreamSelectOptions } from './use-stream.js';
export { useConnectionStatus } from './use-connection-status.js';
export { useCommand, type CommandRefs } from './use-command.js';

/*
 * The names seed 002's Vue team asked for, as aliases of the composables above (the same
 * functions): `useWebSocketSubscription` takes a stream ('signals:demo'), not an event
 * type; its `onEvent` option hears each event of the stream.
 */
export { useTradeSync as useWebSocket } from './plugin.js';
export { useStream as useWebSocketSubscription } from './use-stream.js';
export { useConnectionStatus as useWebSocketStatus } from './use-connection-status.js';
