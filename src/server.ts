import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Admin } from "./admin/admin.js";
import { NodeStatsCollector } from "./admin/node-stats.js";
import { AdminToken } from "./auth/admin-token.js";
import type { Authenticator } from "./auth/identity.js";
import { createAuthenticator } from "./auth/jwt.js";
import type { Broker } from "./broker/broker.js";
import { createBroker } from "./broker/create-broker.js";
import { Namespaces } from "./channel.js";
import { ConfigError, type Config } from "./config.js";
import { protocolError } from "./errors.js";
import { logBrokerEvents } from "./event-log.js";
import { HeraldEvents, isInternalChannel } from "./events.js";
import { PublishApi } from "./http/api.js";
import { expectMethod, sendError, sendJson } from "./http/respond.js";
import { Listener } from "./http/listener.js";
import { rejectUpgrade } from "./http/reject-upgrade.js";
import { RequestTarget } from "./http/request-target.js";
import { GrpcTransport } from "./grpc/grpc-transport.js";
import { isDemoPath, serveDemo } from "./http/demo.js";
import { Hub } from "./hub.js";
import { Lifecycle, type LifecycleListener } from "./lifecycle.js";
import { applyCors } from "./http/cors.js";
import { ConnectionLimiter } from "./limits/connection-limiter.js";
import { createLogger, type Logger } from "./log.js";
import { LogLimiter } from "./log-limiter.js";
import { Metrics } from "./metrics.js";
import { SseTransport } from "./transports/sse.js";
import { NodeRegistry } from "./node-registry.js";
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
  /** Lifecycle events of this node, for metrics, the admin page and tests. */
  readonly events: HeraldEvents;
  readonly metrics: Metrics;
  private readonly logLimiter: LogLimiter;
  /** The admin page and API; undefined while no admin token is configured. */
  private readonly admin: Admin | undefined;
  private readonly stats: NodeStatsCollector | undefined;
  /** The listening socket and its open connections (HTTP/1.1, and HTTP/2 when configured). */
  readonly listener: Listener;
  private readonly api: PublishApi;
  private readonly transports: Transport[];
  private readonly websocket: WebSocketTransport;
  /** The gRPC API, when `grpc.enabled` is set. */
  readonly grpc: GrpcTransport | undefined;
  private readonly registry: NodeRegistry;
  /** Set-Cookie value that lets a load balancer send this client back to this node. */
  private readonly affinityCookie: string;
  private readonly lifecycle = new Lifecycle();
  /** HTTP responses in progress, so shutdown can ask their clients to reconnect. */
  private readonly responses = new Set<ServerResponse>();
  /** The 'close' listener that removes a response from `responses`. One function serves every request, so none builds a closure. */
  private readonly forgetResponse: (this: ServerResponse) => void;
  private readonly auth: Authenticator;
  /** Open connections per remote address, counted by every transport. */
  readonly limiter: ConnectionLimiter;
  private brokerAvailable = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly config: Config,
    options: HeraldOptions = {},
  ) {
    this.log = options.logger ?? createLogger(config.log.level);
    const responses = this.responses;
    this.forgetResponse = function (this: ServerResponse) {
      responses.delete(this);
    };
    this.nodeId = config.nodeId || `node-${randomBytes(4).toString("hex")}`;
    if (config.metrics.requireAdminToken && config.adminToken === "") {
      throw new ConfigError("metrics.requireAdminToken is set but adminToken is empty; set an admin token or turn the requirement off.");
    }
    this.logLimiter = new LogLimiter(this.log);
    this.events = new HeraldEvents((error, event) => {
      this.logLimiter.write(this.log, "error", { err: error, event: event.type }, "event listener failed");
    });
    logBrokerEvents(this.events, this.log, this.logLimiter);
    const auth = options.authenticator ?? createAuthenticator(config.auth);
    this.auth = auth;
    const broker = options.broker ?? createBroker(config, this.log, this.nodeId);
    this.hub = new Hub(broker, new Namespaces(config, auth.enabled), config.idempotencyWindowMs, this.events);
    this.hub.onAvailabilityChange((available) => {
      this.brokerAvailable = available;
    });
    this.api = new PublishApi(config, this.hub, auth);
    const adminToken = new AdminToken(config.adminToken);
    this.limiter = new ConnectionLimiter(config.limits.maxConnectionsPerIp);

    const context: TransportContext = {
      config,
      hub: this.hub,
      log: this.log,
      logLimiter: this.logLimiter,
      events: this.events,
      auth,
      adminToken,
      nodeId: this.nodeId,
      limiter: this.limiter,
      state: () => this.lifecycle.state,
    };
    this.websocket = new WebSocketTransport(context);
    this.transports = [this.websocket, new SseTransport(context), new LongPollTransport(context)];
    if (config.grpc.enabled) {
      this.grpc = new GrpcTransport(context);
      this.transports.push(this.grpc);
    }

    this.affinityCookie = affinityCookie(this.nodeId);
    this.websocket.setUpgradeHeaders([`Set-Cookie: ${this.affinityCookie}`]);
    this.registry = new NodeRegistry(broker, config, this.nodeId, () => this.port, () => this.connectionCount(), this.log);

    this.metrics = new Metrics(this.events, {
      nodeId: this.nodeId,
      state: () => this.lifecycle.state,
      channelCount: () => this.hub.channelSubscribers().filter((entry) => !isInternalChannel(entry.channel)).length,
    });
    if (config.adminToken !== "") {
      this.stats = new NodeStatsCollector(
        this.events,
        {
          nodeId: this.nodeId,
          hub: this.hub,
          state: () => this.lifecycle.state,
          connections: () => Object.fromEntries(this.transports.map((transport) => [transport.name, transport.connectionCount()])),
        },
        config.admin.statsIntervalMs,
      );
      this.admin = new Admin({
        config,
        hub: this.hub,
        adminToken,
        api: this.api,
        collector: this.stats,
        events: this.events,
        log: this.log,
        logLimiter: this.logLimiter,
      });
    }

    this.listener = new Listener(config, {
      request: (req, res) => this.route(req, res),
      upgrade: (req, socket, head) => this.upgrade(req, socket, head),
      clientError: (error) => this.logLimiter.write(this.log, "debug", { err: error }, "malformed HTTP request rejected"),
    });
  }

  /** Starts the broker and listens; resolves with the bound port. */
  async start(): Promise<number> {
    await this.hub.start();
    await this.admin?.start();
    await this.listener.listen(this.config.port, this.config.host);
    const port = this.port;
    const grpcPort = this.grpc ? await this.grpc.listen() : undefined;
    await this.registry.start();
    this.log.info({ port, grpcPort, host: this.config.host, broker: this.hub.broker.kind, node: this.nodeId }, "herald started");
    if (!this.auth.enabled) {
      this.log.warn("no token key configured: anonymous clients may subscribe to every channel");
    }
    if (this.config.apiKeys.length === 0) {
      this.log.warn("no API key configured: the publish API accepts loopback clients only");
    }
    if (this.admin === undefined) {
      this.log.info("no admin token configured: the admin page and API are off");
    }
    return port;
  }

  get port(): number {
    return this.listener.address()?.port ?? 0;
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
    this.events.emit({ type: "drain.started", connections });

    const drained = Promise.all(this.transports.map((transport) => transport.drain())).then(
      () => true,
      (error: unknown) => {
        // The connections left are destroyed below, as after a timeout.
        this.log.error({ err: error }, "drain failed");
        return false;
      },
    );
    const timedOut = !(await resolvesWithin(drained, timeoutMs));
    const remaining = this.connectionCount();
    if (timedOut) {
      this.lifecycle.drainTimedOut(remaining);
      this.log.warn({ remaining }, "drain timeout reached; destroying the remaining connections");
      for (const transport of this.transports) {
        transport.destroy();
      }
    } else {
      this.lifecycle.drained(Date.now() - drainStarted);
      this.log.info({ elapsedMs: Date.now() - drainStarted }, "drain finished");
    }
    this.events.emit({ type: "drain.finished", timedOut, remaining });
    this.admin?.close();
    this.stats?.close();

    await this.registry.stop();
    await this.listener.close(drainStarted + timeoutMs - Date.now());
    await this.hub.broker.close();
    this.metrics.close();
    this.lifecycle.close(Date.now() - started);
    this.log.info({ elapsedMs: Date.now() - started }, "herald stopped");
    this.logLimiter.close();
  }
  /**
   * Serves Prometheus metrics. Open by default, like most scrape targets
   * on an internal network; with metrics.requireAdminToken the scraper
   * sends the admin token as a Bearer header.
   */
  private async serveMetrics(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!this.config.metrics.enabled) {
      throw protocolError("not_found", "Metrics are off; set metrics.enabled to serve them.");
    }
    if (this.config.metrics.requireAdminToken) {
      this.admin?.authorize(req, url);
    }
    const text = await this.metrics.text();
    res.writeHead(200, { "Content-Type": this.metrics.contentType, "Cache-Control": "no-store" });
    res.end(text);
  }

  private connectionCount(): number {
    return this.transports.reduce((sum, transport) => sum + transport.connectionCount(), 0);
  }

  private connectionsByTransport(): Record<string, number> {
    return Object.fromEntries(this.transports.map((transport) => [transport.name, transport.connectionCount()]));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/ws" && this.config.websocket.enabled) {
      this.websocket.handleUpgrade(req, socket, head);
      return;
    }
    const message =
      path === "/ws"
        ? "WebSocket is turned off on this node (websocket.enabled is false)."
        : `No WebSocket endpoint at ${JSON.stringify(path?.slice(0, 100))}; use /ws.`;
    rejectUpgrade(socket, protocolError("not_found", message));
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader("Set-Cookie", this.affinityCookie);
    let target: RequestTarget;
    try {
      target = RequestTarget.of(req.url);
    } catch (error) {
      sendError(res, error);
      return;
    }
    this.responses.add(res);
    res.on("close", this.forgetResponse);
    if (this.lifecycle.shuttingDown) {
      closeAfterResponse(res);
    }
    this.dispatch(req, res, target).catch((error: unknown) => {
      const herald = sendError(res, error);
      if (herald.status >= 500 && herald.code !== "broker_unavailable" && herald.code !== "draining") {
        this.logLimiter.write(this.log, "error", { err: error, path: target.pathname }, "request failed");
      }
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, target: RequestTarget): Promise<void> {
    const method = req.method ?? "GET";
    // Health probes may use HEAD, which Node answers without the body.
    const probeMethod = method === "HEAD" ? "GET" : method;
    const pathname = target.pathname;
    switch (pathname) {
      case "/healthz":
        expectMethod(probeMethod, "GET");
        sendJson(res, 200, { status: "ok", state: this.lifecycle.state, connections: this.connectionsByTransport() });
        return;
      case "/readyz":
        expectMethod(probeMethod, "GET");
        if (this.ready()) {
          sendJson(res, 200, { status: "ready" });
        } else if (this.lifecycle.shuttingDown) {
          sendJson(res, 503, { error: protocolError("draining").toJSON() });
        } else {
          sendJson(res, 503, { error: protocolError("broker_unavailable").toJSON() });
        }
        return;
      case "/api/publish":
        if (applyCors(req, res, this.config, ["POST"])) return;
        expectMethod(method, "POST");
        await this.api.publish(req, res, await this.api.authorizePublisher(req));
        return;
      case "/api/publish_batch":
        if (applyCors(req, res, this.config, ["POST"])) return;
        expectMethod(method, "POST");
        this.api.authorize(req);
        await this.api.publishBatch(req, res);
        return;
      case "/api/info":
        expectMethod(method, "GET");
        this.api.authorize(req);
        sendJson(res, 200, { node: this.nodeId, broker: this.hub.broker.kind, ...(await this.registry.list()) });
        return;
      case "/api/history":
        if (applyCors(req, res, this.config, ["GET"])) return;
        expectMethod(method, "GET");
        this.api.authorize(req);
        await this.api.history(target.url, res);
        return;
      case "/ws":
        expectMethod(method, "GET");
        throw protocolError("bad_request", "The /ws endpoint needs a WebSocket upgrade request.");
      case "/metrics":
        expectMethod(method, "GET");
        await this.serveMetrics(req, res, target.url);
        return;
      default:
        if (isDemoPath(pathname)) {
          expectMethod(method, "GET");
          await serveDemo(pathname, res);
          return;
        }
        if (pathname === "/admin" || pathname.startsWith("/admin/")) {
          if (this.admin === undefined) {
            throw protocolError("not_found", "The admin page is off; set an admin token (HERALD_ADMIN_TOKEN) to turn it on.");
          }
          await this.admin.handle(req, res, target.url);
          return;
        }
        for (const transport of this.transports) {
          if (transport.handleRequest && pathname === `/${transport.name}`) {
            transport.handleRequest(req, res, target.url);
            return;
          }
        }
        throw protocolError("not_found", `No endpoint at ${pathname}.`);
    }
  }
}

/**
 * Builds the affinity cookie `herald_node=<node id>`, valid for the whole
 * site and hidden from scripts. Load balancers route a client that sends
 * it back to the same node, and any node can still serve that client.
 */
function affinityCookie(nodeId: string): string {
  return `herald_node=${encodeURIComponent(nodeId)}; Path=/; HttpOnly; SameSite=Lax`;
}

/**
 * Ends the connection after this response, so a keep-alive client (a load
 * balancer, a publishing backend) reconnects and reaches a node that stays.
 */
function closeAfterResponse(res: ServerResponse): void {
  // HTTP/2 forbids connection-specific headers; its streams end on their own.
  if (!res.headersSent && res.req?.httpVersionMajor === 1) {
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
