import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Authenticator } from "../auth/identity.js";
import type { Config } from "../config.js";
import type { Hub } from "../hub.js";
import type { ConnectionLimiter } from "../limits/connection-limiter.js";
import type { Logger } from "../log.js";

export type NodeState = "running" | "draining" | "closed";

/** What every transport gets from the node. */
export interface TransportContext {
  readonly config: Config;
  readonly hub: Hub;
  readonly log: Logger;
  readonly auth: Authenticator;
  readonly nodeId: string;
  /** Open connections per remote address, shared by every transport (limits.maxConnectionsPerIp). */
  readonly limiter: ConnectionLimiter;
  state(): NodeState;
}

/** One way for clients to receive events; each lives in its own file. */
export interface Transport {
  readonly name: "websocket" | "sse" | "poll";
  /** Serves a plain HTTP request for this transport's path. */
  handleRequest?(req: IncomingMessage, res: ServerResponse, url: URL): void;
  /** Takes over an HTTP Upgrade request. */
  handleUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open connections (streams, held polls). */
  connectionCount(): number;
  /**
   * Starts draining: idle connections are told to reconnect elsewhere and
   * closed; busy ones finish their work. Resolves when none is left.
   */
  drain(): Promise<void>;
  /** Ends every remaining connection at once. */
  destroy(): void;
}
