import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Authenticator } from "./auth/identity.js";
import { AnonymousAuthenticator } from "./auth/identity.js";
import type { Broker } from "./broker/broker.js";
import { MemoryBroker } from "./broker/memory-broker.js";
import { Namespaces } from "./channel.js";
import type { Config } from "./config.js";
import { protocolError } from "./errors.js";
import { PublishApi } from "./http/api.js";
import { isDemoPath, serveDemo } from "./http/demo.js";
import { sendError, sendJson } from "./http/respond.js";
import { Hub } from "./hub.js";
import { createLogger, type Logger } from "./log.js";
import type { NodeState, Transport, TransportContext } from "./transports/transport.js";
import { LongPollTransport } from "./transports/long-poll.js";
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
  private state: NodeState = "running";
  /** Set when shutdown begins, before draining, so /readyz turns 503 first. */
  private leaving = false;
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
    this.api = new PublishApi(config, this.hub, auth);

    const context: TransportContext = {
      config,
      hub: this.hub,
      log: this.log,
      auth,
      nodeId: this.nodeId,
      state: () => this.state,
    };
    this.websocket = new WebSocketTransport(context);
    this.transports = [this.websocket, new LongPollTransport(context)];

    this.http = createServer((req, res) => this.route(req, res));
    this.http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.http.on("clientError", (error, socket) => {
      // Malformed HTTP from one client: answer 400 and keep serving others.
      if (socket.writable) {
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
    return this.state;
  }

  /** Whether /readyz reports ready. */
  ready(): boolean {
    return !this.leaving && this.state === "running" && this.brokerAvailable;
  }

  /**
   * Drains and closes the node: /readyz turns 503, then after the drain
   * delay the transports close idle connections and wait up to the drain
   * timeout for busy ones, then everything left is cut. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.leaving = true;
    this.log.info({ delayMs: this.config.drain.delayMs, timeoutMs: this.config.drain.timeoutMs }, "shutdown started");
    if (this.config.drain.delayMs > 0) {
      await sleep(this.config.drain.delayMs);
    }
    this.state = "draining";
    this.log.info({ connections: this.connectionCount() }, "draining");

    const drained = Promise.all(this.transports.map((transport) => transport.drain()));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.config.drain.timeoutMs);
    });
    const timedOut = await Promise.race([drained.then(() => false), deadline]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn({ connections: this.connectionCount() }, "drain timeout reached; closing the remaining connections");
      for (const transport of this.transports) {
        transport.destroy();
      }
    }

    this.state = "closed";
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      // Keep-alive sockets would hold close() open until their own timeout.
      this.http.closeAllConnections();
    });
    await this.hub.broker.close();
    this.log.info("herald stopped");
  }

  private connectionCount(): number {
    return this.transports.reduce((sum, transport) => sum + transport.connectionCount(), 0);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/ws" && this.config.websocket.enabled) {
      this.websocket.handleUpgrade(req, socket, head);
      return;
    }
    socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://herald.invalid");
    } catch {
      sendError(res, protocolError("bad_request", "The request URL is invalid."));
      return;
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
        sendJson(res, 200, { status: "ok", state: this.state });
        return;
      case "/readyz":
        if (this.ready()) {
          sendJson(res, 200, { status: "ready" });
        } else if (this.leaving) {
          sendJson(res, 503, { error: protocolError("draining").toJSON() });
        } else {
          sendJson(res, 503, { error: protocolError("broker_unavailable").toJSON() });
        }
        return;
      case "/api/publish":
        expectMethod(method, "POST");
        await this.api.publish(req, res, await this.api.authorizePublisher(req));
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
        if (isDemoPath(url.pathname)) {
          expectMethod(method, "GET");
          await serveDemo(url.pathname, res);
          return;
        }
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
