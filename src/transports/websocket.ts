import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { Transport, TransportContext } from "./transport.js";
import { FlushQueue } from "./websocket-frames.js";
import { WebSocketConnection } from "./websocket-connection.js";

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
  private draining = false;
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
      rejectUpgrade(socket, 503, "Service Unavailable", { "Retry-After": "5" }, "draining");
      return;
    }
    const allowed = this.context.config.websocket.allowedOrigins;
    const origin = req.headers.origin;
    if (allowed.length > 0 && origin !== undefined && !allowed.includes(origin)) {
      rejectUpgrade(socket, 403, "Forbidden", {}, "origin_forbidden");
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

  async drain(): Promise<void> {
    this.draining = true;
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    this.closeIdle();
    // Busy connections are checked again until each has finished its work.
    const timer = setInterval(() => this.closeIdle(), 50);
    if (this.connections.size === 0) {
      this.drained?.();
    }
    await done;
    clearInterval(timer);
    this.stopMaintenance();
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
        connection.close(1001, "server draining");
      }
    }
  }

  private forget(connection: WebSocketConnection): void {
    this.connections.delete(connection);
    if (this.draining && this.connections.size === 0) {
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

function rejectUpgrade(socket: Duplex, status: number, text: string, headers: Record<string, string>, code: string): void {
  const body = JSON.stringify({ error: { code, message: text } });
  const lines = [
    `HTTP/1.1 ${status} ${text}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}
