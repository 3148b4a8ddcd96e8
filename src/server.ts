import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Authenticator } from "./auth/identity.js";
import { AnonymousAuthenticator } from "./auth/identity.js";
import type { Broker } from "./broker/broker.js";
import { MemoryBroker } from "./broker/memory-broker.js";
import { Namespaces } from "./channel.js";
import type { Config } from "./config.js";
import { protocolError } from "./errors.js";
import { PublishApi } from "./http/api.js";
import { rejectUpgrade } from "./http/reject-upgrade.js";
import { sendError, sendJson } from "./http/respond.js";
import { Hub } from "./hub.js";
import { Lifecycle, type LifecycleListener } from "./lifecycle.js";
import { createLogger, type Logger } from "./log.js";
import type { NodeState, Transport, TransportContext } from "./transports/transport.js";
import { WebSocketTransport } from "./transports/websocket.js";

export interface HeraldOptions {
  logger?: Logger;
  broker?: Broker;
  authenticator?: Authenticator;
}

/**
 * One Herald node: the HTTP server, its transports, the hub and the broker.
 * States move running → draining → closed and never back.
 */
export class HeraldServer {
  readonly log: Logger;
  readonly hub: Hub;
  readonly nodeId: string;
  private readonly http: Server;
  private readonly api: PublishApi;
  private readonly transports: Transport[];
  private readonly websocket: WebSocketTransport;
  private readonly lifecycle = new Lifecycle();
  /** HTTP responses in progress, so shutdown can ask their clients to reconnect. */
  private readonly responses = new Set<ServerResponse>();
  /** Every open TCP connection; http.Server.closeAllConnections() misses upgraded ones. */
  private readonly sockets = new Set<Socket>();
  private brokerAvailable = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly config: Config,
    options: HeraldOptions = {},
  ) {
    this.log = options.logger ?? createLogger(config.log.level);
    this.nodeId = config.nodeId || `node-${randomBytes(4).toString("hex")}`;
    const auth = options.authenticator ?? new AnonymousAuthenticator();
    const broker = options.broker ?? new MemoryBroker();
    this.hub = new Hub(broker, new Namespaces(config, auth.enabled), config.idempotencyWindowMs);
    this.hub.onAvailabilityChange((available) => {
      this.brokerAvailable = available;
    });
    this.api = new PublishApi(config, this.hub);

    const context: TransportContext = {
      config,
      hub: this.hub,
      log: this.log,
      auth,
      nodeId: this.nodeId,
      state: () => this.lifecycle.state,
    };
    this.websocket = new WebSocketTransport(context);
    this.transports = [this.websocket];

    this.http = createServer((req, res) => this.route(req, res));
    this.http.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.http.on("clientError", (error, socket) => {
      // Malformed HTTP from one client: answer 400 and keep serving others.
      if (socket.writable) {
        // Destroyed once flushed, so a client that never sends its FIN cannot hold close() open.
        socket.once("finish", () => socket.destroy());
        socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      } else {
        socket.destroy(error);
      }
    });
  }

  /** Starts the broker and listens; resolves with the bound port. */
  async start(): Promise<number> {
    await this.hub.start();
    await new Promise<void>((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off("error", reject);
        resolve();
      });
    });
    const port = this.port;
    this.log.info({ port, host: this.config.host, broker: this.hub.broker.kind, node: this.nodeId }, "herald started");
    if (this.config.apiKeys.length === 0) {
      this.log.warn("no API key configured: the publish API accepts loopback clients only");
    }
    return port;
  }

  get port(): number {
    return (this.http.address() as AddressInfo | null)?.port ?? 0;
  }

  get nodeState(): NodeState {
    return this.lifecycle.state;
  }

  /** Adds a listener for lifecycle events (shutdown, draining, closed); returns a function that removes it. */
  onLifecycle(listener: LifecycleListener): () => void {
    return this.lifecycle.on(listener);
  }

  /** Returns whether /readyz reports ready: the broker is reachable and no shutdown was requested. */
  ready(): boolean {
    return !this.lifecycle.shuttingDown && this.brokerAvailable;
  }

  /**
   * Drains and closes the node: /readyz turns 503 at once, then after the
   * drain delay the transports close idle connections and give busy ones
   * up to the drain timeout, then everything left is destroyed.
   * Idempotent: later calls return the first call's promise.
   */
  close(reason = "close"): Promise<void> {
    this.closing ??= this.shutdown(reason);
    return this.closing;
  }

  private async shutdown(reason: string): Promise<void> {
    const { delayMs, timeoutMs } = this.config.drain;
    const started = Date.now();
    this.lifecycle.requestShutdown(reason, delayMs, timeoutMs);
    for (const res of this.responses) {
      closeAfterResponse(res);
    }
    this.log.info({ reason, delayMs, timeoutMs }, "shutdown started");
    if (delayMs > 0) {
      await sleep(delayMs);
    }

    const drainStarted = Date.now();
    const connections = this.connectionCount();
    this.lifecycle.startDraining(connections);
    this.log.info({ connections }, "draining");
    const drained = Promise.all(this.transports.map((transport) => transport.drain())).then(
      () => true,
      (error: unknown) => {
        // The connections left are destroyed below, as after a timeout.
        this.log.error({ err: error }, "drain failed");
        return false;
      },
    );
    if (await resolvesWithin(drained, timeoutMs)) {
      this.lifecycle.drained(Date.now() - drainStarted);
      this.log.info({ elapsedMs: Date.now() - drainStarted }, "drained");
    } else {
      const remaining = this.connectionCount();
      this.lifecycle.drainTimedOut(remaining);
      this.log.warn({ remaining }, "drain timeout reached; destroying the remaining connections");
      for (const transport of this.transports) {
        transport.destroy();
      }
    }

    await this.closeHttp(drainStarted + timeoutMs - Date.now());
    await this.hub.broker.close();
    this.lifecycle.close(Date.now() - started);
    this.log.info({ elapsedMs: Date.now() - started }, "herald stopped");
  }

  /**
   * Stops listening and closes idle keep-alive connections at once. HTTP
   * requests still in progress (a publish, say) may finish within budgetMs,
   * and their responses carry `Connection: close`. Every socket still open
   * then is destroyed, so close() waits at most budgetMs on a keep-alive,
   * half-sent or half-closed connection.
   */
  private closeHttp(budgetMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.destroySockets(), Math.max(0, budgetMs));
      this.http.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.http.closeIdleConnections();
    });
  }

  private destroySockets(): void {
    for (const socket of this.sockets) {
      socket.destroy();
    }
  }

  private connectionCount(): number {
    return this.transports.reduce((sum, transport) => sum + transport.connectionCount(), 0);
  }

  private connectionsByTransport(): Record<string, number> {
    return Object.fromEntries(this.transports.map((transport) => [transport.name, transport.connectionCount()]));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/ws") {
      this.websocket.handleUpgrade(req, socket, head);
      return;
    }
    rejectUpgrade(socket, "not_found");
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://herald.invalid");
    } catch {
      sendError(res, protocolError("bad_request", "The request URL is invalid."));
      return;
    }
    this.responses.add(res);
    res.once("close", () => this.responses.delete(res));
    if (this.lifecycle.shuttingDown) {
      closeAfterResponse(res);
    }
    this.dispatch(req, res, url).catch((error: unknown) => {
      const herald = sendError(res, error);
      if (herald.status >= 500 && herald.code !== "broker_unavailable" && herald.code !== "draining") {
        this.log.error({ err: error, path: url.pathname }, "request failed");
      }
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    switch (url.pathname) {
      case "/healthz":
        sendJson(res, 200, { status: "ok", state: this.lifecycle.state, connections: this.connectionsByTransport() });
        return;
      case "/readyz":
        if (this.ready()) {
          sendJson(res, 200, { status: "ready" });
        } else if (this.lifecycle.shuttingDown) {
          sendJson(res, 503, { error: protocolError("draining").toJSON() });
        } else {
          sendJson(res, 503, { error: protocolError("broker_unavailable").toJSON() });
        }
        return;
      case "/api/publish":
        expectMethod(method, "POST");
        this.api.authorize(req);
        await this.api.publish(req, res);
        return;
      case "/api/publish_batch":
        expectMethod(method, "POST");
        this.api.authorize(req);
        await this.api.publishBatch(req, res);
        return;
      case "/api/history":
        expectMethod(method, "GET");
        this.api.authorize(req);
        await this.api.history(url, res);
        return;
      case "/ws":
        throw protocolError("bad_request", "The /ws endpoint needs a WebSocket upgrade request.");
      default:
        for (const transport of this.transports) {
          if (transport.handleRequest && url.pathname === `/${transport.name}`) {
            transport.handleRequest(req, res, url);
            return;
          }
        }
        throw protocolError("not_found", `No endpoint at ${url.pathname}.`);
    }
  }
}

function expectMethod(method: string, expected: string): void {
  if (method !== expected) {
    throw protocolError("method_not_allowed", `Use ${expected} on this path, not ${method}.`);
  }
}

/**
 * Ends the connection after this response, so a keep-alive client (a load
 * balancer, a publishing backend) reconnects and reaches a node that stays.
 */
function closeAfterResponse(res: ServerResponse): void {
  if (!res.headersSent) {
    res.setHeader("Connection", "close");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with `work`'s value if it comes within ms, else with false; the timer never outlives the wait. */
async function resolvesWithin(work: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
