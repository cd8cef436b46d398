import type { IncomingMessage } from 'node:http';
import type { Authenticator } from './auth.js';
import type { CommandHandler } from './commands.js';
import type { GatewayConfig } from './config.js';
import type { Engine } from './engines/engine.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { StreamStore } from './state/store.js';
import type { OriginPolicy } from './http/origin.js';
import type { Fanout } from './ws/fanout.js';
import type { Positions } from './ws/positions.js';

/** The parts of a running gateway that request handlers (WebSocket and HTTP) use. */
export interface GatewayContext {
  readonly config: GatewayConfig;
  readonly engine: Engine;
  readonly store: StreamStore;
  readonly fanout: Fanout;
  /** Streams' positions and state checksums for subscribers. */
  readonly positions: Positions;
  readonly metrics: Metrics;
  readonly auth: Authenticator;
  readonly log: Logger;
  commands: CommandHandler | undefined;
  /** Which web pages may call the gateway; rebuilt once the listening port is known. */
  origins: OriginPolicy;
  /** The client's address: the peer's, or the one a trusted proxy names in X-Forwarded-For. */
  readonly clientAddress: (req: IncomingMessage) => string;
  /** How long a command handler may take before the caller gets TIMEOUT. */
  readonly commandTimeoutMs: number;
}
