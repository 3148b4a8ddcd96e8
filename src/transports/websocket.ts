import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { Identity } from "../auth/identity.js";
import { tokenFromRequest } from "../auth/request-token.js";
import { type HeraldError, protocolError, toHeraldError } from "../errors.js";
import { originAllowed } from "../http/cors.js";
import { rawErrorResponse } from "../http/respond.js";
import type { Transport, TransportContext } from "./transport.js";
import { WebSocketConnection } from "./websocket-connection.js";

/**
 * WebSocket (RFC 6455) at /ws. The `ws` server runs without its own HTTP
 * server and without per-message deflate: compressing each frame would
 * cost CPU per subscriber, while Herald shares one encoded frame among all.
 */
export class WebSocketTransport implements Transport {
  readonly name = "websocket";
  private readonly server: WebSocketServer;
  private readonly connections = new Set<WebSocketConnection>();
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private draining = false;
  private drained: (() => void) | undefined;

  constructor(private readonly context: TransportContext) {
    this.server = new WebSocketServer({
      noServer: true,
      maxPayload: context.config.websocket.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
      // The connection sends pongs itself, within its rate limit, so a ping flood cannot make the node write.
      autoPong: false,
    });
    // ws would reject a malformed handshake with a text/html body; Herald sends its JSON error instead.
    this.server.on("wsClientError", (error: Error, socket: Duplex) => {
      const code = error.message === "Invalid HTTP method" ? "method_not_allowed" : "bad_request";
      rejectUpgrade(socket, protocolError(code, `Invalid WebSocket upgrade: ${error.message}.`));
    });
    const interval = context.config.websocket.pingIntervalMs;
    if (interval > 0) {
      // One timer for all connections: a timer per connection would cost memory for each.
      this.heartbeat = setInterval(() => this.ping(), interval);
      this.heartbeat.unref();
    }
  }

  connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Checks an upgrade before the handshake: node state, Origin, the
   * per-address connection limit, and a token in the `token` query
   * parameter or the Authorization header. A rejected upgrade gets an HTTP
   * status and a JSON error body, which browsers do not show to the page.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's HTTP server drops its error listener on upgrade sockets; a reset during the token check must not crash.
    socket.on("error", () => socket.destroy());
    if (this.context.state() !== "running") {
      rejectUpgrade(socket, protocolError("draining"), { "Retry-After": "5" });
      return;
    }
    // Cross-site WebSocket hijacking: browsers send any site's page here with the user's cookies.
    if (!originAllowed(req, this.context.config.websocket.allowedOrigins)) {
      rejectUpgrade(socket, protocolError("origin_forbidden", "The Origin is not in websocket.allowedOrigins."));
      return;
    }
    const address = req.socket.remoteAddress ?? "";
    const release = this.context.limiter.acquire(address);
    if (!release) {
      const max = this.context.config.limits.maxConnectionsPerIp;
      rejectUpgrade(socket, protocolError("too_many_connections", `At most ${max} connections per address are allowed.`));
      return;
    }
    // The raw socket closes once, whether the upgrade fails or the WebSocket ends later.
    socket.once("close", release);

    let token: string | undefined;
    try {
      token = tokenFromRequest(req, new URL(req.url ?? "/", "http://herald.invalid"));
    } catch (error) {
      rejectUpgrade(socket, toHeraldError(error));
      return;
    }
    if (token === undefined) {
      this.accept(req, socket, head, address, undefined);
      return;
    }
    this.context.auth.authenticate(token).then(
      (identity) => this.accept(req, socket, head, address, identity),
      (error: unknown) => rejectUpgrade(socket, toHeraldError(error)),
    );
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, address: string, identity: Identity | undefined): void {
    if (socket.destroyed) {
      return;
    }
    this.server.handleUpgrade(req, socket, head, (ws) => {
      const connection = new WebSocketConnection(ws, this.context, (closed) => this.forget(closed), address, identity);
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
  }

  destroy(): void {
    for (const connection of this.connections) {
      connection.terminate();
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
        connection.close(1011, "ping timeout");
        continue;
      }
      connection.missedPongs++;
      connection.socket.ping();
    }
  }
}

function rejectUpgrade(socket: Duplex, error: HeraldError, headers: Record<string, string> = {}): void {
  if (socket.writable) {
    socket.end(rawErrorResponse(error, headers));
  } else {
    socket.destroy();
  }
}
