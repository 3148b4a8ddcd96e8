import type { IncomingMessage, ServerResponse } from "node:http";
import { checkSubscribe, type Identity } from "../auth/identity.js";
import { connectionId } from "../connection-id.js";
import { protocolError, toHeraldError } from "../errors.js";
import { isInternalChannel } from "../events.js";
import { applyCors } from "../http/cors.js";
import { remoteAddress } from "../http/listener.js";
import { sendError } from "../http/respond.js";
import type { Logger } from "../log.js";
import { ConnectionMonitor } from "./connection-monitor.js";
import { parseSseRequest, type SseRequest } from "./sse-request.js";
import { sendReconnectLater, SseStream } from "./sse-stream.js";
import type { Transport, TransportContext } from "./transport.js";

/**
 * Server-Sent Events at GET /sse?channel=…: one stream per request, over
 * HTTP/1.1 or HTTP/2. Each event's `id:` is a cursor over all of the
 * stream's channels, so a reconnecting EventSource resumes them all.
 *
 * A stream opened with the admin token (the admin page's live feed) may
 * follow every channel, internal ones included. It is an operator's
 * stream, not a client's, so its lifecycle events carry the transport
 * label "admin" and connectionCount() leaves it out.
 */
export class SseTransport implements Transport {
  readonly name = "sse";
  private readonly streams = new Set<SseStream>();
  private readonly adminStreams = new Set<SseStream>();
  private readonly log: Logger;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private drained: (() => void) | undefined;

  constructor(private readonly context: TransportContext) {
    this.log = context.log.child({ transport: "sse" });
    // One timer for all streams, as a timer per stream would cost memory for each.
    this.heartbeatTimer = setInterval(() => this.heartbeat(), context.config.sse.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  connectionCount(): number {
    return this.streams.size - this.adminStreams.size;
  }

  handleRequest(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.open(req, res, url).catch((error: unknown) => {
      const herald = toHeraldError(error);
      if (herald.code === "internal") {
        this.log.error({ err: error }, "sse request failed");
      } else {
        this.log.debug({ code: herald.code }, "sse request rejected");
      }
      if (res.headersSent) {
        res.destroy();
      } else if (herald.status >= 500) {
        // A failure on the node's side passes (broker, key set); with any
        // status but 200 EventSource would stop for good, not retry.
        sendReconnectLater(res, this.context.config.sse.retryMs, herald.code);
      } else {
        sendError(res, herald);
      }
    });
  }

  async drain(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    for (const stream of this.streams) {
      stream.drain();
    }
    if (this.streams.size === 0) {
      this.drained?.();
    }
    await done;
    clearInterval(this.heartbeatTimer);
  }

  destroy(): void {
    clearInterval(this.heartbeatTimer);
    for (const stream of this.streams) {
      stream.destroy();
    }
  }

  private async open(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { config, hub } = this.context;
    if (applyCors(req, res, config, ["GET"])) {
      return;
    }
    if (req.method !== "GET") {
      throw protocolError("method_not_allowed", `Open an event stream with GET, not ${req.method}.`);
    }
    if (this.context.state() !== "running") {
      // EventSource stops for good on any status but 200, so a node that
      // will not serve the stream still responds 200 with a retry delay.
      sendReconnectLater(res, config.sse.retryMs);
      return;
    }
    const address = remoteAddress(req) ?? "";
    const release = this.context.limiter.acquire(address);
    if (release === undefined) {
      // Like draining, not a 429: the address is served again once some of
      // its streams end, and a 429 would stop its EventSources for good.
      this.context.logLimiter.write(this.log, "info", { remote: address }, "sse stream refused: too many connections from the address");
      sendReconnectLater(res, config.sse.retryMs, "too_many_connections");
      return;
    }
    // The response closes once on every path: rejected, ended or cut.
    res.once("close", release);
    const request = parseSseRequest(req, url, config.limits.maxChannelsPerConnection, this.context.adminToken);

    // The stream watches the response from this tick on, so a client that
    // leaves while the token is checked or history is read is released.
    const monitor = new ConnectionMonitor(this.context, request.admin ? "admin" : "sse", connectionId(), address);
    const stream = new SseStream(res, request.channels, {
      hub,
      monitor,
      retryMs: config.sse.retryMs,
      outboundBufferBytes: config.limits.outboundBufferBytes,
      onClosed: (closed) => this.forget(closed),
    });
    this.streams.add(stream);
    if (request.admin) {
      this.adminStreams.add(stream);
    }
    res.once("close", () => stream.close());
    res.once("error", () => stream.close());
    if (this.drained !== undefined) {
      stream.drain();
    }

    try {
      const identity = request.admin ? undefined : await this.authorize(request, monitor);
      await stream.start(request.since, identity);
    } catch (error) {
      stream.rejected(toHeraldError(error).code);
      throw error;
    }
  }

  /** Checks the token and the channels of a stream opened without the admin token. */
  private async authorize(request: SseRequest, monitor: ConnectionMonitor): Promise<Identity> {
    const { auth, hub } = this.context;
    let identity: Identity;
    try {
      identity = await auth.authenticate(request.token);
    } catch (error) {
      monitor.authFailed(toHeraldError(error).code);
      throw error;
    }
    if (!identity.anonymous) {
      monitor.identify(identity.user);
    }
    for (const channel of request.channels) {
      if (isInternalChannel(channel)) {
        throw protocolError("forbidden", `Channel ${channel} is internal; only the admin token may follow it.`);
      }
      checkSubscribe(identity, hub.namespaceOf(channel), channel);
    }
    return identity;
  }

  private forget(stream: SseStream): void {
    this.streams.delete(stream);
    this.adminStreams.delete(stream);
    if (this.drained !== undefined && this.streams.size === 0) {
      this.drained();
    }
  }

  private heartbeat(): void {
    for (const stream of this.streams) {
      stream.heartbeat();
    }
  }
}
