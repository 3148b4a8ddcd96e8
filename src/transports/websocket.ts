import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { rejectUpgrade } from "../http/reject-upgrade.js";
import { jitteredRetryAfterSeconds } from "../jitter.js";
import type { Transport, TransportContext } from "./transport.js";
import { FlushQueue } from "./websocket-frames.js";
import { WebSocketConnection } from "./websocket-connection.js";

/** How often a draining node looks for connections that finished their work, in ms. */
const DRAIN_SWEEP_MS = 50;

/** Close code sent to clients when the node drains: 1001 "going away" (RFC 6455 section 7.4.1). */
const GOING_AWAY = 1001;

/**
 * WebSocket (RFC 6455) at /ws. The `ws` server runs without its own HTTP
 * server and without per-message deflate: compressing each frame would
 * cost CPU per subscriber, while Herald shares one encoded frame among all.
 * Connections write those shared frames to their TCP sockets directly
 * (see WebSocketConnection.flush), which relies on deflate staying off.
 */
export class WebSocketTransport implements Transport {
  readonly name = "websocket";
  private readonly server: WebSocketServer;
  private readonly connections = new Set<WebSocketConnection>();
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private readonly flushQueue: FlushQueue;
  private readonly maintenance: NodeJS.Timeout[] = [];
  /** Set while draining; resolves drain() once the last connection is gone. */
  private drained: (() => void) | undefined;
  private upgradeHeaders: string[] = [];

  constructor(private readonly context: TransportContext) {
    this.server = new WebSocketServer({
      noServer: true,
      maxPayload: context.config.websocket.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.flushQueue = new FlushQueue(context.config.websocket.writeDelayMs);
    this.server.on("headers", (headers: string[]) => headers.push(...this.upgradeHeaders));
    const interval = context.config.websocket.pingIntervalMs;
    if (interval > 0) {
      // One timer for all connections: a timer per connection would cost memory for each.
      this.heartbeat = setInterval(() => this.ping(), interval);
      this.heartbeat.unref();
    }
    // Sessions and presence entries are refreshed in batches, one timer each
    // for all connections; the Redis engine pipelines the writes.
    const every = (ms: number, task: (connection: WebSocketConnection) => void) => {
      const timer = setInterval(() => this.connections.forEach(task), ms);
      timer.unref();
      this.maintenance.push(timer);
    };
    every(context.config.sessionSaveIntervalMs, (connection) => connection.saveSessionIfChanged());
    every(context.config.presence.refreshMs, (connection) => connection.refreshPresence());
  }

  /** Header lines added to every 101 Switching Protocols response, such as the affinity cookie. */
  setUpgradeHeaders(lines: string[]): void {
    this.upgradeHeaders = lines;
  }

  connectionCount(): number {
    return this.connections.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.context.state() !== "running") {
      const retryAfter = jitteredRetryAfterSeconds(this.context.config.sse.retryMs);
      rejectUpgrade(socket, "draining", { "Retry-After": String(retryAfter) });
      return;
    }
    const allowed = this.context.config.websocket.allowedOrigins;
    const origin = req.headers.origin;
    if (allowed.length > 0 && origin !== undefined && !allowed.includes(origin)) {
      rejectUpgrade(socket, "origin_forbidden");
      return;
    }
    this.server.handleUpgrade(req, socket, head, (ws) => {
      const connection = new WebSocketConnection(
        ws,
        socket,
        this.flushQueue,
        this.context,
        (closed) => this.forget(closed),
        req.socket.remoteAddress ?? "",
      );
      this.connections.add(connection);
    });
  }

  /**
   * Sends a 1001 close to every idle connection at once. A busy connection
   * (a command awaiting its reply, or data not yet written to the socket)
   * is closed as soon as a sweep finds it idle. Resolves when every
   * connection is gone; the node destroys the rest at its drain timeout.
   */
  drain(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    this.closeIdle();
    if (this.connections.size === 0) {
      this.drained?.();
    }
    const sweep = setInterval(() => this.closeIdle(), DRAIN_SWEEP_MS);
    return done.finally(() => {
      clearInterval(sweep);
      this.stopMaintenance();
    });
  }

  destroy(): void {
    for (const connection of this.connections) {
      connection.terminate();
    }
    this.stopMaintenance();
  }

  private stopMaintenance(): void {
    for (const timer of this.maintenance) {
      clearInterval(timer);
    }
  }

  private closeIdle(): void {
    for (const connection of this.connections) {
      if (connection.idle()) {
        connection.close(GOING_AWAY, "server draining");
      }
    }
  }

  private forget(connection: WebSocketConnection): void {
    this.connections.delete(connection);
    if (this.connections.size === 0) {
      this.drained?.();
    }
  }

  private ping(): void {
    const limit = this.context.config.websocket.missedPongs;
    for (const connection of this.connections) {
      if (connection.missedPongs >= limit) {
        connection.close(1011, "ping timeout", "ping_timeout");
        continue;
      }
      connection.missedPongs++;
      connection.socket.ping();
    }
  }
}
