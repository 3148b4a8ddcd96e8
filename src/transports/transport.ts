import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { AdminToken } from "../auth/admin-token.js";
import type { Authenticator } from "../auth/identity.js";
import type { Config } from "../config.js";
import type { HeraldEvents } from "../events.js";
import type { Hub } from "../hub.js";
import type { NodeState } from "../lifecycle.js";
import type { ConnectionLimiter } from "../limits/connection-limiter.js";
import type { Logger } from "../log.js";
import type { LogLimiter } from "../log-limiter.js";

export type { NodeState };

/** Node services shared by every transport. */
export interface TransportContext {
  readonly config: Config;
  readonly hub: Hub;
  readonly log: Logger;
  /** Writes lines that clients can make repeat (bad auth, slow consumers) with a rate limit. */
  readonly logLimiter: LogLimiter;
  /** Lifecycle events for metrics and tests; see ConnectionMonitor for connection events. */
  readonly events: HeraldEvents;
  readonly auth: Authenticator;
  /** The admin token; over SSE its holder may follow internal `$` channels. */
  readonly adminToken: AdminToken;
  readonly nodeId: string;
  /** Open connections per remote address, shared by every transport (limits.maxConnectionsPerIp). */
  readonly limiter: ConnectionLimiter;
  state(): NodeState;
}

/** One way for clients to receive events; each lives in its own file. */
export interface Transport {
  readonly name: "websocket" | "sse" | "poll" | "grpc";
  /** Serves a plain HTTP request for this transport's path. */
  handleRequest?(req: IncomingMessage, res: ServerResponse, url: URL): void;
  /** Takes over an HTTP Upgrade request. */
  handleUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open connections (streams, held polls). */
  connectionCount(): number;
  /**
   * Starts draining: idle connections are asked to reconnect elsewhere and
   * closed; busy ones finish their work. Resolves when none is left.
   */
  drain(): Promise<void>;
  /** Ends every remaining connection at once. */
  destroy(): void;
}
