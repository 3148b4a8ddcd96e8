import type { IncomingMessage, ServerResponse } from "node:http";
import { watchExpiry } from "../auth/expiry.js";
import { checkSubscribe, type Identity } from "../auth/identity.js";
import type { StreamPosition } from "../broker/broker.js";
import { connectionId } from "../connection-id.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { EncodedPublication } from "../encoded.js";
import { protocolError, toHeraldError } from "../errors.js";
import type { Subscriber, Subscription } from "../hub.js";
import { applyCors } from "../http/cors.js";
import { remoteAddress } from "../http/listener.js";
import { sendError } from "../http/respond.js";
import { ConnectionMonitor } from "./connection-monitor.js";
import { parsePollRequest, type PollRequest } from "./long-poll-request.js";
import type { Transport, TransportContext } from "./transport.js";

/**
 * HTTP long-polling at `GET /poll`. The cursor is a position in every
 * requested channel, so a poll reads what follows it from history and
 * needs no per-client queue between polls. Only a poll that finds nothing
 * is held. It subscribes through the hub from the cursor's position and
 * responds at the first event, gap or timeout.
 */
export class LongPollTransport implements Transport {
  readonly name = "poll";
  private readonly polls = new Set<Poll>();
  private drained: (() => void) | undefined;

  constructor(private readonly context: TransportContext) {}

  connectionCount(): number {
    return this.polls.size;
  }

  handleRequest(req: IncomingMessage, res: ServerResponse, url: URL): void {
    let request: PollRequest;
    try {
      // Pages on origins in cors.allowedOrigins may poll; others get 403 origin_forbidden.
      if (applyCors(req, res, this.context.config, ["GET"])) {
        return;
      }
      if (req.method !== "GET") {
        throw protocolError("method_not_allowed", `Use GET on /poll, not ${req.method}.`);
      }
      request = parsePollRequest(req, url, this.context.config);
    } catch (error) {
      sendError(res, error);
      return;
    }
    // A held poll is an open connection, so it counts against the address's limit until it responds.
    const address = remoteAddress(req) ?? "";
    const release = this.context.limiter.acquire(address);
    if (release === undefined) {
      const max = this.context.config.limits.maxConnectionsPerIp;
      sendError(res, protocolError("too_many_connections", `At most ${max} connections per address are allowed.`), { "Retry-After": "1" });
      return;
    }
    res.once("close", release);
    // Each poll is one connection in the metrics and logs, from here to its response.
    const monitor = new ConnectionMonitor(this.context, "poll", connectionId(), address);
    const poll = new Poll(this.context, request, res, monitor, (done) => this.forget(done));
    this.polls.add(poll);
    void poll.run();
  }

  /** Responds to every held poll at once; polls still reading history respond when they finish. */
  async drain(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    for (const poll of this.polls) {
      poll.release();
    }
    if (this.polls.size === 0) {
      this.drained?.();
    }
    await done;
  }

  destroy(): void {
    for (const poll of this.polls) {
      poll.abort("going_away");
    }
  }

  private forget(poll: Poll): void {
    this.polls.delete(poll);
    if (this.context.state() !== "running" && this.polls.size === 0) {
      this.drained?.();
    }
  }
}

interface Gap {
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
}

/**
 * One poll from request to response. Positions only move past events that
 * go into the response, so whatever does not fit in the batch, or arrives
 * after it was sent, is read from history by the next poll.
 */
class Poll implements Subscriber {
  private readonly positions = new Map<string, StreamPosition>();
  private readonly events: string[] = [];
  private readonly gaps: Gap[] = [];
  private subscriptions: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private cancelExpiry: () => void = () => undefined;
  private scheduled = false;
  /** Set once the response is sent or the client went away. */
  private finished = false;
  private held = false;

  constructor(
    private readonly context: TransportContext,
    private readonly request: PollRequest,
    private readonly res: ServerResponse,
    private readonly monitor: ConnectionMonitor,
    private readonly onDone: (poll: Poll) => void,
  ) {
    res.on("close", () => this.abort());
  }

  async run(): Promise<void> {
    try {
      await this.start();
    } catch (error) {
      this.fail(error);
    }
  }

  deliver(event: EncodedPublication, subscription: Subscription): void {
    if (!this.add(subscription.channel, event)) {
      return;
    }
    this.scheduleRespond();
  }

  gap(subscription: Subscription, position: StreamPosition): void {
    if (this.finished || this.batchFull()) {
      // A full batch leaves the gap to the next poll, which finds it in history.
      return;
    }
    this.addGap(subscription.channel, position);
    this.scheduleRespond();
  }

  overflow(): void {
    this.respond();
  }

  /** Responds now with what the poll has, as drain requires of held polls. */
  release(): void {
    if (this.held) {
      this.respond();
    }
  }

  /** Ends the poll without a response: the client left or the node is closing. */
  abort(reason = "client_closed"): void {
    if (this.finished) {
      return;
    }
    this.finish(reason);
    if (!this.res.writableEnded) {
      this.res.destroy();
    }
  }

  private async start(): Promise<void> {
    const { context, request } = this;
    let identity: Identity;
    try {
      identity = await context.auth.authenticate(request.token);
    } catch (error) {
      this.monitor.authFailed(toHeraldError(error).code);
      throw error;
    }
    if (!identity.anonymous) {
      this.monitor.identify(identity.user);
    }
    for (const channel of request.channels) {
      checkSubscribe(identity, context.hub.namespaceOf(channel), channel);
    }
    await this.readPositions();
    if (this.finished) {
      return;
    }
    await this.readHistory();
    if (this.finished) {
      return;
    }
    if (this.events.length > 0 || this.gaps.length > 0 || request.holdMs === 0 || context.state() !== "running") {
      this.respond();
      return;
    }
    await this.hold(identity);
  }

  /** Decodes the cursor, or takes each channel's current top when there is none. */
  private async readPositions(): Promise<void> {
    const { channels, cursor } = this.request;
    if (cursor !== undefined) {
      for (const [channel, position] of decodeCursor(cursor, channels)) {
        this.positions.set(channel, position);
      }
      return;
    }
    const tops = await Promise.all(channels.map((channel) => this.context.hub.history(channel, 0, 0)));
    channels.forEach((channel, i) => {
      this.positions.set(channel, { epoch: tops[i]!.epoch, offset: tops[i]!.top });
    });
  }

  /**
   * Reads what follows each position from history. Each channel may fill
   * an equal share of the batch, so one busy channel cannot starve the rest.
   */
  private async readHistory(): Promise<void> {
    const { channels } = this.request;
    const share = Math.max(1, Math.floor(this.context.config.poll.batchLimit / channels.length));
    const results = await Promise.all(
      channels.map((channel) => this.context.hub.history(channel, this.positions.get(channel)!.offset, share)),
    );
    channels.forEach((channel, i) => {
      const history = results[i]!;
      const position = this.positions.get(channel)!;
      if (history.epoch === position.epoch && position.offset > history.top) {
        throw protocolError("invalid_position", `Offset ${position.offset} is beyond the newest event (${history.top}) of channel ${channel}.`);
      }
      // Same rule as a WebSocket resume: a lost position continues after the channel's top.
      if (history.epoch !== position.epoch || position.offset + 1 < history.earliest) {
        this.addGap(channel, { epoch: history.epoch, offset: history.top });
        return;
      }
      for (const publication of history.publications) {
        if (!this.add(channel, new EncodedPublication(publication))) {
          return;
        }
      }
    });
  }

  /**
   * Subscribes every channel from its position. Events published since the
   * history read come back as recovered publications, later ones live, so
   * the hand-over has neither hole nor repeat.
   */
  private async hold(identity: Identity): Promise<void> {
    const { hub } = this.context;
    const settled = await Promise.allSettled(
      this.request.channels.map((channel) => hub.subscribe(this, channel, this.positions.get(channel))),
    );
    for (const outcome of settled) {
      if (outcome.status === "fulfilled") {
        this.subscriptions.push(outcome.value.subscription);
      }
    }
    const failure = settled.find((outcome) => outcome.status === "rejected");
    if (failure) {
      throw failure.reason;
    }
    if (this.finished) {
      this.unsubscribe();
      return;
    }

    for (const outcome of settled) {
      const result = (outcome as PromiseFulfilledResult<Awaited<ReturnType<typeof hub.subscribe>>>).value;
      const channel = result.subscription.channel;
      if (!result.recovered) {
        this.addGap(channel, { epoch: result.epoch, offset: result.top });
        continue;
      }
      for (const event of result.publications) {
        if (!this.add(channel, event)) {
          break;
        }
      }
    }
    if (this.events.length > 0 || this.gaps.length > 0 || this.context.state() !== "running") {
      this.respond();
      return;
    }

    // Activation and holding happen in this one tick, so no event is missed.
    this.held = true;
    for (const subscription of this.subscriptions) {
      subscription.activate();
    }
    if (!this.finished) {
      this.timer = setTimeout(() => this.respond(), this.request.holdMs);
      this.cancelExpiry = watchExpiry(identity, () => this.expire());
    }
  }

  /**
   * Ends a held poll when its token expires, as SSE and WebSocket end.
   * Events already taken (the response waits one tick for more) still go
   * out, and the next poll gets 401 token_expired; otherwise this one does.
   */
  private expire(): void {
    if (this.events.length > 0 || this.gaps.length > 0) {
      this.respond();
      return;
    }
    this.fail(protocolError("token_expired", "The token expired; poll again with a new token and the same cursor."));
  }

  /** Adds an event to the batch unless the batch is full; returns whether it was added. */
  private add(channel: string, event: EncodedPublication): boolean {
    if (this.finished || this.batchFull()) {
      return false;
    }
    this.events.push(event.json);
    this.positions.set(channel, { epoch: event.publication.epoch, offset: event.offset });
    return true;
  }

  private addGap(channel: string, position: StreamPosition): void {
    this.gaps.push({ channel, epoch: position.epoch, offset: position.offset });
    this.positions.set(channel, position);
  }

  private batchFull(): boolean {
    return this.events.length >= this.context.config.poll.batchLimit;
  }

  /** Responds on the next turn of the event loop, so events published together go out together. */
  private scheduleRespond(): void {
    if (this.scheduled) {
      return;
    }
    this.scheduled = true;
    setImmediate(() => this.respond());
  }

  private respond(): void {
    if (this.finished) {
      return;
    }
    const running = this.context.state() === "running";
    this.finish(running ? "responded" : "going_away");
    const cursor = encodeCursor(this.request.channels, this.positions);
    const body = `{"events":[${this.events.join(",")}],"cursor":${JSON.stringify(cursor)},"gaps":${JSON.stringify(this.gaps)}}`;
    const headers: Record<string, string | number> = {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": Buffer.byteLength(body),
      "Cache-Control": "no-store",
    };
    if (!running) {
      // Tells clients that the quick response means the node is leaving, not that events are waiting.
      headers["Retry-After"] = "1";
    }
    this.res.writeHead(200, headers);
    this.res.end(body);
  }

  private fail(error: unknown): void {
    if (this.finished) {
      return;
    }
    const herald = toHeraldError(error);
    this.finish(herald.code);
    sendError(this.res, herald);
    if (herald.code === "internal") {
      this.context.log.error({ err: error, transport: "poll" }, "poll failed");
    } else {
      this.context.log.debug({ code: herald.code, transport: "poll" }, "poll rejected");
    }
  }

  /** Releases the poll's timer and subscriptions and reports why it ended; the response is the caller's. */
  private finish(reason: string): void {
    this.finished = true;
    this.monitor.closed(undefined, reason);
    this.held = false;
    clearTimeout(this.timer);
    this.cancelExpiry();
    this.unsubscribe();
    this.onDone(this);
  }

  private unsubscribe(): void {
    for (const subscription of this.subscriptions) {
      this.context.hub.unsubscribe(subscription);
    }
    this.subscriptions = [];
  }
}
