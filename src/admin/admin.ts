import type { IncomingMessage, ServerResponse } from "node:http";
import type { AdminToken } from "../auth/admin-token.js";
import type { Config } from "../config.js";
import type { EncodedPublication } from "../encoded.js";
import { protocolError } from "../errors.js";
import type { HeraldEvents } from "../events.js";
import type { PublishApi } from "../http/api.js";
import { remoteAddress } from "../http/listener.js";
import { expectMethod, isLoopback, sendJson } from "../http/respond.js";
import type { Hub, Subscriber, Subscription } from "../hub.js";
import type { Logger } from "../log.js";
import type { LogLimiter } from "../log-limiter.js";
import type { NodeStats, NodeStatsCollector } from "./node-stats.js";
import { ADMIN_CSS, ADMIN_HTML, ADMIN_SCRIPT } from "./page.js";

/**
 * Internal channel on which every node publishes its stats. The `$` keeps
 * clients off it; over SSE only the admin token may follow it.
 */
export const ADMIN_CHANNEL = "$admin:stats";

const PAGE_HEADERS = {
  "Cache-Control": "no-store",
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

export interface AdminOptions {
  readonly config: Config;
  readonly hub: Hub;
  readonly adminToken: AdminToken;
  readonly api: PublishApi;
  readonly collector: NodeStatsCollector;
  readonly events: HeraldEvents;
  readonly log: Logger;
  readonly logLimiter: LogLimiter;
}

interface KnownNode {
  stats: NodeStats;
  receivedAt: number;
}

/**
 * The admin page and admin API under /admin, behind the admin token.
 * Each node publishes its stats on ADMIN_CHANNEL every interval and
 * follows the channel itself, so any node's page shows every node that
 * shares its broker. The page reads the latest stats from
 * /admin/api/stats, then follows ADMIN_CHANNEL over the SSE transport.
 */
export class Admin implements Subscriber {
  private readonly nodes = new Map<string, KnownNode>();
  private subscription: Subscription | undefined;
  private publisher: NodeJS.Timeout | undefined;

  constructor(private readonly options: AdminOptions) {}

  /** Follows ADMIN_CHANNEL and starts publishing this node's stats. */
  async start(): Promise<void> {
    const { hub, config } = this.options;
    const result = await hub.subscribe(this, ADMIN_CHANNEL);
    this.subscription = result.subscription;
    result.subscription.activate();

    this.publisher = setInterval(() => this.publishStats(), config.admin.statsIntervalMs);
    this.publisher.unref();
    this.publishStats();
  }

  /** Serves a request under /admin. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    switch (url.pathname) {
      case "/admin":
      case "/admin/":
        expectMethod(method, "GET");
        sendText(res, "text/html; charset=utf-8", ADMIN_HTML);
        return;
      case "/admin/admin.js":
        expectMethod(method, "GET");
        sendText(res, "text/javascript; charset=utf-8", ADMIN_SCRIPT);
        return;
      case "/admin/admin.css":
        expectMethod(method, "GET");
        sendText(res, "text/css; charset=utf-8", ADMIN_CSS);
        return;
      case "/admin/api/stats":
        expectMethod(method, "GET");
        this.authorize(req, url);
        sendJson(res, 200, { nodes: this.liveNodes().map((node) => node.stats) });
        return;
      case "/admin/api/publish":
        expectMethod(method, "POST");
        this.authorize(req, url);
        await this.options.api.publish(req, res);
        return;
      default:
        throw protocolError("not_found", `No admin endpoint at ${url.pathname}.`);
    }
  }

  close(): void {
    clearInterval(this.publisher);
    if (this.subscription) {
      this.options.hub.unsubscribe(this.subscription);
    }
  }

  deliver(event: EncodedPublication): void {
    let stats: NodeStats;
    try {
      stats = JSON.parse(event.publication.data) as NodeStats;
    } catch (error) {
      this.options.logLimiter.write(this.options.log, "warn", { err: error }, "invalid admin stats message ignored");
      return;
    }
    this.nodes.set(stats.node, { stats, receivedAt: Date.now() });
  }

  gap(): void {
    // Stats are snapshots: a missed one is replaced by the next.
  }

  overflow(): void {
    this.options.log.warn({ channel: ADMIN_CHANNEL }, "admin stats subscription overflowed; stats pause until restart");
  }

  /**
   * Throws unless the request carries the admin token, as a Bearer header
   * or (for EventSource, which cannot set headers) the `token` query
   * parameter, compared in constant time.
   */
  authorize(req: IncomingMessage, url: URL): void {
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
    const given = match?.[1]?.trim() ?? url.searchParams.get("token") ?? "";
    if (given === "") {
      throw protocolError("unauthorized", "Send the admin token as Authorization: Bearer <token> or as the token query parameter.");
    }
    if (!this.options.adminToken.matches(given)) {
      const remote = remoteAddress(req) ?? "";
      this.options.logLimiter.write(this.options.log, isLoopback(remote) ? "info" : "warn", { remote, path: url.pathname }, "admin authentication failed");
      this.options.events.emit({ type: "auth.failed", transport: "admin", code: "unauthorized" });
      throw protocolError("unauthorized", "The admin token is not valid.");
    }
  }

  /** Nodes heard from within three intervals; older ones are forgotten. */
  private liveNodes(): KnownNode[] {
    const now = Date.now();
    for (const [id, node] of this.nodes) {
      if (now - node.receivedAt > 3 * node.stats.intervalMs) {
        this.nodes.delete(id);
      }
    }
    return [...this.nodes.values()];
  }

  private publishStats(): void {
    if (!this.options.hub.broker.available()) {
      // NOTE: stats travel through the broker, so while it is down no node's
      // stats arrive and the page lists no node until it is back.
      return;
    }
    const stats = this.options.collector.snapshot();
    this.options.hub.publishInternal(ADMIN_CHANNEL, JSON.stringify(stats)).catch((error: unknown) => {
      this.options.logLimiter.write(this.options.log, "warn", { err: error }, "admin stats publish failed");
    });
  }
}

function sendText(res: ServerResponse, contentType: string, text: string): void {
  res.writeHead(200, { ...PAGE_HEADERS, "Content-Type": contentType, "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
