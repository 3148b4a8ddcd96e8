import type { IncomingMessage, ServerResponse } from "node:http";
import { checkSubscribe } from "../auth/identity.js";
import { protocolError, toHeraldError } from "../errors.js";
import { sendError } from "../http/respond.js";
import type { Logger } from "../log.js";
import { parseSseRequest } from "./sse-request.js";
import { sendReconnectLater, SseStream } from "./sse-stream.js";
import type { Transport, TransportContext } from "./transport.js";

/** Headers that let pages of any origin open a stream, with a token and a resume cursor. */
const CORS_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
};

const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  ...CORS_HEADERS,
  "Access-Control-Allow-Methods": "GET",
  "Access-Control-Allow-Headers": "Authorization, Last-Event-ID, Cache-Control",
  "Access-Control-Max-Age": "86400",
};

/**
 * Server-Sent Events at GET /sse?channel=…: one stream per request, over
 * HTTP/1.1 or HTTP/2. Each event's `id:` is a cursor over all of the
 * stream's channels, so a reconnecting EventSource resumes them all.
 */
export class SseTransport implements Transport {
  readonly name = "sse";
  private readonly streams = new Set<SseStream>();
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
    return this.streams.size;
  }

  handleRequest(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (req.method === "OPTIONS") {
      res.writeHead(204, PREFLIGHT_HEADERS);
      res.end();
      return;
    }
    this.open(req, res, url).catch((error: unknown) => {
      const herald = toHeraldError(error);
      if (herald.code === "internal") {
        this.log.error({ err: error }, "sse request failed");
      } else {
        this.log.debug({ code: herald.code }, "sse request rejected");
      }
      if (!res.headersSent) {
        sendError(res, herald, CORS_HEADERS);
      } else {
        res.destroy();
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
    if (req.method !== "GET") {
      throw protocolError("method_not_allowed", `Open an event stream with GET, not ${req.method}.`);
    }
    const { config, hub, auth } = this.context;
    if (this.context.state() !== "running") {
      // EventSource stops for good on any status but 200, so a node that
      // will not serve the stream still responds 200 with a retry delay.
      sendReconnectLater(res, config.sse.retryMs);
      return;
    }
    const request = parseSseRequest(req, url, config.limits.maxChannelsPerConnection);

    // The stream watches the response from this tick on, so a client that
    // leaves while the token is checked or history is read is released.
    const stream = new SseStream(res, request.channels, {
      hub,
      log: this.log,
      retryMs: config.sse.retryMs,
      outboundBufferBytes: config.limits.outboundBufferBytes,
      onClosed: (closed) => this.forget(closed),
    });
    this.streams.add(stream);
    res.once("close", () => stream.close());
    res.once("error", () => stream.close());
    if (this.drained !== undefined) {
      stream.drain();
    }

    const identity = await auth.authenticate(request.token);
    for (const channel of request.channels) {
      checkSubscribe(identity, hub.namespaceOf(channel), channel);
    }
    await stream.start(request.since);
  }

  private forget(stream: SseStream): void {
    this.streams.delete(stream);
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
