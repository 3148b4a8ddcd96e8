import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { Identity } from "../auth/identity.js";
import { tokenFromRequest } from "../auth/request-token.js";
import { protocolError, toHeraldError } from "../errors.js";
import { originAllowed } from "../http/cors.js";
import { remoteAddress } from "../http/listener.js";
import { rejectUpgrade } from "../http/reject-upgrade.js";
import { parseRequestTarget } from "../http/request-target.js";
import { jitteredRetryAfterSeconds } from "../jitter.js";
import type { Transport, TransportContext } from "./transport.js";
import { WebSocketConnection } from "./websocket-connection.js";
import { FlushQueue } from "./websocket-frames.js";

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
  private readonly maintenance: NodeJS.Timeout[] = [];
  private readonly flushQueue: FlushQueue;
  /** Set while draining; resolves drain() once the last connection is gone. */
  private drained: (() => void) | undefined;
  private upgradeHeaders: string[] = [];

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

  /**
   * Checks an upgrade before the handshake: node state, Origin, the
   * per-address connection limit, and a token in the `token` query
   * parameter or the Authorization header. A rejected upgrade gets an HTTP
   * status and a JSON error body, which browsers do not show to the page.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's HTTP server drops its error listener on upgrade sockets; a reset during the token check must not crash.
    destroyOnError(socket);
    if (this.context.state() !== "running") {
      const retryAfter = jitteredRetryAfterSeconds(this.context.config.sse.retryMs);
      rejectUpgrade(socket, "draining", { "Retry-After": String(retryAfter) });
      return;
    }
    // Cross-site WebSocket hijacking: browsers send any site's page here with the user's cookies.
    if (!originAllowed(req, this.context.config.websocket.allowedOrigins)) {
      rejectUpgrade(socket, protocolError("origin_forbidden", "The Origin is not in websocket.allowedOrigins."));
      return;
    }
    const address = remoteAddress(req) ?? "";
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
      token = tokenFromRequest(req, parseRequestTarget(req.url ?? "/"));
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
      const connection = new WebSocketConnection(
        ws,
        socket,
        this.flushQueue,
        this.context,
        (closed) => this.forget(closed),
        address,
        identity,
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
      connection.ping();
    }
  }
}

/**
 * Destroys the socket when it fails. It is a function of its own because
 * a listener defined inside handleUpgrade would keep that call's whole
 * scope alive, the upgrade request included, for the connection's life.
 */
function destroyOnError(socket: Duplex): void {
  socket.on("error", () => socket.destroy());
}
