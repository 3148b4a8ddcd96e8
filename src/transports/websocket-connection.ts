import type { Duplex } from "node:stream";
import { WebSocket } from "ws";
import { watchExpiry } from "../auth/expiry.js";
import type { Identity } from "../auth/identity.js";
import { ANONYMOUS, checkPublish, checkSubscribe } from "../auth/identity.js";
import type { PresenceEvent, StreamPosition } from "../broker/broker.js";
import { validateChannel } from "../channel.js";
import { connectionId } from "../connection-id.js";
import type { EncodedPublication } from "../encoded.js";
import { HeraldError, protocolError, toHeraldError } from "../errors.js";
import type { Subscriber, Subscription } from "../hub.js";
import { TokenBucket } from "../limits/token-bucket.js";
import type { Logger } from "../log.js";
import { encodePublicationData } from "../publication-data.js";
import { ConnectionMonitor } from "./connection-monitor.js";
import type { TransportContext } from "./transport.js";
import type { Flushable, FlushQueue } from "./websocket-frames.js";
import type { Command, RequestId } from "./websocket-protocol.js";
import { CommandError, errorFrame, parseCommand, replyFrame } from "./websocket-protocol.js";

/** Session state stored in the broker, so that a reconnect on any node restores it. */
interface SessionState {
  user: string;
  positions: Record<string, StreamPosition>;
}

/** The result of a subscribe command. */
interface SubscribeReply {
  channel: string;
  epoch: string;
  offset: number;
  recovered: boolean;
}

/** Bytes of pre-framed events a connection queues before it writes them without waiting for the flush. */
const MAX_BATCH_BYTES = 64 * 1024;

/** One WebSocket client: its commands, subscriptions and liveness. */
export class WebSocketConnection implements Subscriber, Flushable {
  readonly id = connectionId();
  private identity: Identity = ANONYMOUS;
  private connected = false;
  /**
   * The token check of a connect in progress. Commands run concurrently, so
   * a command that arrives meanwhile awaits it. Otherwise it would start an
   * anonymous connect of its own that could replace the token's identity.
   */
  private authenticating: Promise<Identity> | undefined;
  /** Settles once the first connect, explicit or implicit, has finished and its reply is sent. */
  private connectReplied: Promise<unknown> | undefined;
  private session: string | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Channels where this connection has a presence entry. */
  private readonly present = new Set<string>();
  /** Whether confirmed positions moved since the session was last saved. */
  private sessionChanged = false;
  /**
   * Per channel, the position the client has confirmed receiving: a pong
   * to a ping sent after that event. A resumed session starts from here.
   */
  private readonly confirmed = new Map<string, StreamPosition>();
  /** Positions at each unanswered ping, keyed by the ping's payload. */
  private readonly pingPositions = new Map<string, Map<string, StreamPosition>>();
  private pingsSent = 0;
  /** Channels with a subscribe command still running, so a second one is rejected. */
  private readonly subscribing = new Set<string>();
  /** Commands received whose reply is not sent yet. */
  private inFlight = 0;
  missedPongs = 0;
  private closing = false;
  /** The close code this side sent, reported instead of the peer's echo. */
  private sentCode: number | undefined;
  /** Label for the close when the code alone would mislead, such as 1011 for a ping timeout. */
  private closeLabel: string | undefined;
  private readonly monitor: ConnectionMonitor;
  /** Commands and control frames from the client share one budget. */
  private readonly bucket: TokenBucket;
  /** Frames dropped in a row for the rate limit; past the burst size the connection is closed. */
  private rejectedInRow = 0;
  private cancelExpiry: () => void = () => undefined;
  /** Pre-framed events waiting for the next flush: one frame, or several in order. */
  private queued: Buffer | Buffer[] | undefined;
  private queuedBytes = 0;

  /**
   * @param upgradeIdentity identity from a token on the upgrade request;
   * a `connect` command without a token keeps it.
   */
  constructor(
    readonly socket: WebSocket,
    /** The TCP socket under `socket`, for writing pre-framed events (see flush). */
    private readonly raw: Duplex,
    private readonly flushQueue: FlushQueue,
    private readonly context: TransportContext,
    private readonly onClosed: (connection: WebSocketConnection) => void,
    remoteAddress: string,
    private readonly upgradeIdentity?: Identity,
  ) {
    this.monitor = new ConnectionMonitor(context, "websocket", this.id, remoteAddress);
    const limits = context.config.limits;
    this.bucket = new TokenBucket(limits.commandRate, limits.commandBurst);
    if (upgradeIdentity) {
      this.setIdentity(upgradeIdentity);
    }
    socket.on("message", (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    socket.on("ping", (data) => this.onPing(data));
    socket.on("pong", (data) => {
      this.missedPongs = 0;
      this.confirmPing(data.toString());
      this.withinRate();
    });
    socket.on("close", (code) => this.onClose(code));
    socket.on("error", (error) => this.monitor.debug({ err: error }, "websocket error"));
  }

  private get log(): Logger {
    return this.monitor.log;
  }

  /** Returns whether the connection waits on nothing: no command in flight, nothing unsent. */
  idle(): boolean {
    return this.inFlight === 0 && this.queued === undefined && this.socket.bufferedAmount === 0;
  }

  /**
   * Closes the WebSocket with a code and a reason, and forces it shut if
   * the peer never replies. `label` names the cause in metrics and logs
   * when it differs from the code's name.
   */
  close(code: number, reason: string, label?: string): void {
    if (this.closing) {
      return;
    }
    // Events queued before the close go out before the close frame.
    this.flush();
    this.closing = true;
    this.sentCode = code;
    this.closeLabel = label;
    this.socket.close(code, reason);
    // A peer that never completes the close handshake is cut after this delay.
    const timer = setTimeout(() => this.socket.terminate(), 5_000);
    timer.unref();
  }

  terminate(): void {
    this.socket.terminate();
  }

  deliver(event: EncodedPublication): void {
    this.enqueue(event.wsFrame);
  }

  gap(subscription: Subscription, position: StreamPosition): void {
    this.send(JSON.stringify({ type: "gap", channel: subscription.channel, epoch: position.epoch, offset: position.offset }));
  }

  overflow(): void {
    this.closeAsSlow();
  }

  presenceChanged(subscription: Subscription, event: PresenceEvent): void {
    this.send(
      JSON.stringify({ type: event.type, channel: subscription.channel, client: event.entry.clientId, user: event.entry.user }),
    );
  }

  /** Saves the session if positions moved since the last save; the transport calls it periodically. */
  saveSessionIfChanged(): void {
    if (this.sessionChanged && !this.closing) {
      this.saveSession();
    }
  }

  /**
   * Sends a heartbeat ping and remembers each subscription's position at
   * that moment. The client reads frames in order, so its pong confirms
   * every event written before the ping.
   */
  ping(): void {
    this.missedPongs++;
    const payload = String(++this.pingsSent);
    this.pingPositions.set(payload, this.currentPositions());
    // The ping must follow every event its positions count, so queued events go out first.
    this.flush();
    this.socket.ping(payload);
  }

  private confirmPing(payload: string): void {
    const positions = this.pingPositions.get(payload);
    if (positions === undefined) {
      // An unsolicited pong (RFC 6455 allows them as a heartbeat) confirms nothing.
      return;
    }
    // Pongs reply to pings in order, so the older pings are confirmed too.
    for (const key of this.pingPositions.keys()) {
      this.pingPositions.delete(key);
      if (key === payload) {
        break;
      }
    }
    for (const [channel, position] of positions) {
      if (this.subscriptions.has(channel)) {
        this.confirmed.set(channel, position);
      }
    }
    this.sessionChanged = true;
  }

  private currentPositions(): Map<string, StreamPosition> {
    const positions = new Map<string, StreamPosition>();
    for (const [channel, subscription] of this.subscriptions) {
      positions.set(channel, { epoch: subscription.epoch, offset: subscription.offset });
    }
    return positions;
  }

  /** Refreshes this connection's presence entries before they expire; the transport calls it periodically. */
  refreshPresence(): void {
    for (const channel of this.present) {
      this.addPresence(channel);
    }
  }

  /**
   * Whether a message may be sent now. When not, it counts the drop, and
   * closes a slow consumer: one with more than the outbound limit waiting,
   * counting the queue of pre-framed events and the bufferedAmount of ws
   * and the socket in this process (which includes the frames that flush
   * wrote there). The kernel's socket buffers come on top and are not RSS.
   */
  private accepts(): boolean {
    if (this.closing) {
      this.monitor.drop("closing");
      return false;
    }
    if (this.queuedBytes + this.socket.bufferedAmount > this.context.config.limits.outboundBufferBytes) {
      this.monitor.drop("slow_consumer");
      this.closeAsSlow();
      return false;
    }
    return true;
  }

  /**
   * Sends a message within the outbound limit. Every message to the
   * client goes through here, replies included, except publications,
   * which go through enqueue.
   */
  private send(message: string): void {
    if (this.accepts()) {
      this.sendNow(message);
    }
  }

  /** Sends through ws, after the queued events, so the connection's messages keep their order. */
  private sendNow(message: string): void {
    this.flush();
    this.socket.send(message);
  }

  /**
   * Queues a pre-framed event for the next flush. Every subscriber gets
   * the same frame object, so nothing is encoded per subscriber.
   */
  private enqueue(frame: Buffer): void {
    // Batches past this size gain nothing from waiting, and the kernel may
    // take the bytes now, so they do not count against the outbound limit.
    if (this.queuedBytes + frame.length > Math.min(MAX_BATCH_BYTES, this.context.config.limits.outboundBufferBytes)) {
      this.flush();
    }
    if (!this.accepts()) {
      return;
    }
    const queued = this.queued;
    if (queued === undefined) {
      this.queued = frame;
      this.flushQueue.add(this);
    } else if (Array.isArray(queued)) {
      queued.push(frame);
    } else {
      this.queued = [queued, frame];
    }
    this.queuedBytes += frame.length;
  }

  /**
   * Writes the queued frames straight to the TCP socket, in one write
   * (corked when there are several). Bypassing ws.send is safe under four
   * invariants. Per-message deflate is off, so ws never compresses or
   * delays frames. Herald never sends Blobs, the only other reason ws's
   * sender queues. ws writes each frame it sends synchronously and whole,
   * so frames never interleave. Nothing is written once the WebSocket is
   * no longer OPEN, because no data frame may follow a close frame
   * (RFC 6455 section 5.5.1).
   */
  flush(): void {
    const queued = this.queued;
    if (queued === undefined) {
      return;
    }
    this.queued = undefined;
    this.queuedBytes = 0;
    if (this.closing || this.socket.readyState !== WebSocket.OPEN || !this.raw.writable) {
      return;
    }
    if (!Array.isArray(queued)) {
      this.raw.write(queued);
      return;
    }
    this.raw.cork();
    for (const frame of queued) {
      this.raw.write(frame);
    }
    this.raw.uncork();
  }

  /**
   * Takes one unit of the command budget. Over it, the first dropped frame
   * gets a `rate_limited` error, later ones are dropped silently, and a
   * client that goes on for another burst is closed with 4029.
   */
  private withinRate(): boolean {
    if (this.bucket.take()) {
      this.rejectedInRow = 0;
      return true;
    }
    this.rejectedInRow++;
    if (this.rejectedInRow === 1) {
      const rate = this.context.config.limits.commandRate;
      this.send(errorFrame(undefined, protocolError("rate_limited", `Over ${rate} commands per second; the command was dropped.`)));
    } else if (this.rejectedInRow > this.context.config.limits.commandBurst) {
      this.log.info({ rejected: this.rejectedInRow }, "rate limited client closed");
      this.fail(protocolError("rate_limited"));
    }
    return false;
  }

  private onPing(data: Buffer): void {
    if (this.closing || !this.withinRate()) {
      return;
    }
    if (this.queuedBytes + this.socket.bufferedAmount > this.context.config.limits.outboundBufferBytes) {
      this.closeAsSlow();
      return;
    }
    this.socket.pong(data);
  }

  /** Switches to a new identity and closes the connection with 4001 when its token expires. */
  private setIdentity(identity: Identity): void {
    this.identity = identity;
    this.cancelExpiry();
    this.cancelExpiry = watchExpiry(identity, () => {
      this.send(errorFrame(undefined, protocolError("token_expired", "The token expired; connect again with a new token.")));
      this.fail(protocolError("token_expired"));
    });
  }

  private closeAsSlow(): void {
    if (this.closing) {
      return;
    }
    this.monitor.slowConsumer(this.queuedBytes + this.socket.bufferedAmount);
    this.close(4008, "slow consumer");
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closing) {
      return;
    }
    if (!this.withinRate()) {
      return;
    }
    if (isBinary) {
      this.fail(protocolError("binary_not_supported"));
      return;
    }
    let command: Command;
    try {
      command = parseCommand(data.toString("utf8"));
    } catch (error) {
      if (error instanceof CommandError) {
        this.send(errorFrame(error.id, error.error));
      } else {
        this.send(errorFrame(undefined, toHeraldError(error)));
      }
      return;
    }
    if (this.context.state() !== "running") {
      // New work would hold the drain open; the client retries it on the node it reconnects to.
      this.sendNow(errorFrame(command.id, protocolError("draining")));
      return;
    }
    this.inFlight++;
    const done = this.execute(command)
      .then((result) => this.reply(command.id, result))
      .catch((error: unknown) => {
        this.replyError(command.id, error);
        // A rejected connect ends the connection, after the error reply names the reason.
        if (command.type === "connect" && !this.connected) {
          this.fail(toHeraldError(error));
        }
      })
      .finally(() => {
        this.inFlight--;
      });
    if (command.type === "connect") {
      this.connectReplied ??= done;
    }
  }

  private reply(id: RequestId, result: unknown): void {
    if (result instanceof Deferred) {
      // The command sends its own reply (subscribe, which must send it before the recovered events).
      return;
    }
    if (result instanceof RawJson) {
      this.send(`{"id":${JSON.stringify(id)},"type":"reply","result":${result.text}}`);
      return;
    }
    this.send(replyFrame(id, result));
  }

  private replyError(id: RequestId, error: unknown): void {
    const herald = toHeraldError(error);
    if (herald.code === "internal") {
      this.log.error({ err: error }, "command failed");
    }
    this.send(errorFrame(id, herald));
  }

  /** Ends the connection for an error whose code closes it. */
  private fail(error: HeraldError): void {
    this.monitor.debug({ code: error.code }, "connection closed for a protocol error");
    this.close(error.close ?? 1008, error.message.slice(0, 120));
  }

  private async execute(command: Command): Promise<unknown> {
    if (command.type === "connect") {
      return this.connect(command.token, command.session);
    }
    if (!this.connected) {
      // Commands wait until the connect reply is sent, so replies keep the
      // order of the commands. A client that skips connect is anonymous.
      this.connectReplied ??= this.connect(undefined, undefined);
      await this.connectReplied;
      if (!this.connected) {
        throw protocolError("unauthorized", "The connect command failed; this command was not run.");
      }
    }
    switch (command.type) {
      case "subscribe":
        return this.subscribe(command.id, command.channel, command.since);
      case "unsubscribe":
        return this.unsubscribe(command.channel);
      case "publish":
        return this.publish(command.channel, command.data);
      case "history":
        return this.history(command.channel, command.since ?? 0, command.limit);
      case "presence":
        return this.presence(command.channel);
      case "refresh":
        return this.refresh(command.token);
      case "ping":
        return {};
    }
  }

  private async authenticate(token: string | undefined): Promise<Identity> {
    try {
      return await this.context.auth.authenticate(token);
    } catch (error) {
      this.monitor.authFailed(toHeraldError(error).code);
      throw error;
    }
  }

  private async connect(token: string | undefined, session: string | undefined): Promise<unknown> {
    if (this.connected || this.authenticating) {
      throw protocolError("bad_request", "The connection is already connected.");
    }
    this.authenticating =
      token === undefined && this.upgradeIdentity ? Promise.resolve(this.upgradeIdentity) : this.authenticate(token);
    try {
      this.setIdentity(await this.authenticating);
    } finally {
      this.authenticating = undefined;
    }
    this.connected = true;
    if (!this.identity.anonymous) {
      this.monitor.identify(this.identity.user);
    }

    // Each restored channel is reported like a subscribe reply, so the client learns its epoch.
    const restored: SubscribeReply[] = [];
    if (session !== undefined) {
      const saved = await this.context.hub.broker.loadSession(session).catch(() => undefined);
      const state = saved === undefined ? undefined : (JSON.parse(saved) as SessionState);
      if (state && state.user === this.identity.user) {
        this.session = session;
        for (const [channel, position] of Object.entries(state.positions)) {
          const result = await this.subscribe(undefined, channel, position).catch(() => undefined);
          if (result && !(result instanceof Deferred)) restored.push(result);
        }
      }
    }
    this.session ??= connectionId();
    this.monitor.debug({ user: this.identity.user, session: this.session }, "client connected");
    return { client: this.id, session: this.session, node: this.context.nodeId, user: this.identity.user, restored };
  }

  /**
   * Replaces the token before it expires, without reconnecting. The new
   * token must be for the same user.
   */
  private async refresh(token: string): Promise<unknown> {
    const identity = await this.authenticate(token);
    if (identity.anonymous) {
      throw protocolError("token_invalid", "The refresh command needs a token.");
    }
    if (identity.user !== this.identity.user) {
      throw protocolError("token_user_mismatch", "The new token is for another user; open a new connection for that user.");
    }
    // NOTE: channels already subscribed stay subscribed even if the new token no longer lists them.
    this.setIdentity(identity);
    return { expiresAt: identity.expiresAt ?? null };
  }

  /**
   * Subscribes and replies with the channel's epoch and offset, then sends
   * the recovered events, then goes live, all in one tick so that no live
   * event can slip between them.
   */
  private async subscribe(id: RequestId | undefined, channel: string, since: StreamPosition | undefined): Promise<SubscribeReply | Deferred> {
    validateChannel(channel);
    if (this.subscriptions.has(channel) || this.subscribing.has(channel)) {
      throw protocolError("already_subscribed", `Already subscribed to ${channel}.`);
    }
    if (this.subscriptions.size + this.subscribing.size >= this.context.config.limits.maxChannelsPerConnection) {
      throw protocolError("too_many_channels", `A connection may subscribe to at most ${this.context.config.limits.maxChannelsPerConnection} channels.`);
    }
    checkSubscribe(this.identity, this.context.hub.namespaceOf(channel), channel);

    this.subscribing.add(channel);
    let result;
    try {
      result = await this.context.hub.subscribe(this, channel, since);
    } finally {
      this.subscribing.delete(channel);
    }
    if (this.closing) {
      this.context.hub.unsubscribe(result.subscription);
      throw protocolError("draining", "The connection closed during subscribe.");
    }
    this.subscriptions.set(channel, result.subscription);
    // The client has confirmed nothing on this channel yet, so a resume restarts from where this subscribe started.
    this.confirmed.set(channel, since ?? { epoch: result.epoch, offset: result.top });

    // The offset after which events follow: the requested one when recovered, else the channel's top.
    const offset = since !== undefined && result.recovered ? since.offset : result.top;
    const reply: SubscribeReply = { channel, epoch: result.epoch, offset, recovered: result.recovered };
    if (id !== undefined) {
      this.send(replyFrame(id, reply));
    }
    if (!result.recovered && since !== undefined) {
      this.gap(result.subscription, { epoch: result.epoch, offset: result.top });
    }
    for (const event of result.publications) {
      this.enqueue(event.wsFrame);
    }
    result.subscription.activate();
    this.saveSession();
    if (this.context.hub.namespaceOf(channel).presence) {
      this.present.add(channel);
      this.addPresence(channel);
    }
    return id === undefined ? reply : DEFERRED;
  }

  private async unsubscribe(channel: string): Promise<unknown> {
    validateChannel(channel);
    const subscription = this.subscriptions.get(channel);
    if (!subscription) {
      throw protocolError("not_subscribed", `Not subscribed to ${channel}.`);
    }
    this.subscriptions.delete(channel);
    this.confirmed.delete(channel);
    this.context.hub.unsubscribe(subscription);
    this.saveSession();
    this.removePresence(channel);
    return {};
  }

  private async publish(channel: string, data: unknown): Promise<unknown> {
    validateChannel(channel);
    if (data === undefined) {
      throw protocolError("invalid_command", "Invalid publish command (data: required).");
    }
    checkPublish(this.identity, this.context.hub.namespaceOf(channel), channel);
    const publication = await this.context.hub.publish(channel, encodePublicationData(data));
    return { channel, epoch: publication.epoch, offset: publication.offset };
  }

  private async history(channel: string, since: number, limit: number | undefined): Promise<unknown> {
    validateChannel(channel);
    const namespace = this.context.hub.namespaceOf(channel);
    checkSubscribe(this.identity, namespace, channel);
    const history = await this.context.hub.history(channel, since, limit ?? namespace.historySize);
    // The stored data is JSON text already; splice it in rather than parse and re-encode it.
    const items = history.publications.map((publication) => `{"offset":${publication.offset},"data":${publication.data}}`);
    return new RawJson(
      `{"channel":${JSON.stringify(channel)},"epoch":"${history.epoch}","top":${history.top},"earliest":${history.earliest},"publications":[${items.join(",")}]}`,
    );
  }

  private async presence(channel: string): Promise<unknown> {
    validateChannel(channel);
    const namespace = this.context.hub.namespaceOf(channel);
    checkSubscribe(this.identity, namespace, channel);
    if (!namespace.presence) {
      throw protocolError("forbidden", `Presence is not enabled for ${channel}.`);
    }
    const entries = await this.context.hub.broker.presenceList(channel);
    return { channel, clients: entries.map((entry) => ({ client: entry.clientId, user: entry.user })) };
  }

  private addPresence(channel: string): void {
    const entry = { clientId: this.id, user: this.identity.user, node: this.context.nodeId };
    this.context.hub.broker
      .presenceAdd(channel, entry, this.context.config.presence.ttlMs)
      .catch((error: unknown) => this.monitor.debug({ err: error, channel }, "presence add failed"));
  }

  private removePresence(channel: string): void {
    if (!this.present.delete(channel)) {
      return;
    }
    this.context.hub.broker
      .presenceRemove(channel, this.id)
      .catch((error: unknown) => this.monitor.debug({ err: error, channel }, "presence remove failed"));
  }

  /**
   * Stores the user and each channel's confirmed position, or with
   * `delivered` the position of the last event written. It runs on
   * subscribe, unsubscribe and close, and every sessionSaveIntervalMs while
   * confirmed positions move. A resumed session may thus repeat events the
   * client already has (it drops them by offset) but never skips one.
   */
  private saveSession(delivered = false): void {
    if (this.session === undefined) {
      return;
    }
    this.sessionChanged = false;
    const positions: Record<string, StreamPosition> = {};
    for (const [channel, subscription] of this.subscriptions) {
      const current = { epoch: subscription.epoch, offset: subscription.offset };
      positions[channel] = delivered ? current : (this.confirmed.get(channel) ?? current);
    }
    const state: SessionState = { user: this.identity.user, positions };
    this.context.hub.broker
      .saveSession(this.session, JSON.stringify(state), this.context.config.sessionTtlMs)
      .catch((error: unknown) => this.log.warn({ err: error }, "session save failed"));
  }

  private onClose(code: number): void {
    this.closing = true;
    this.cancelExpiry();
    // 1006 means no close frame came. Any other code means the client sent
    // one, after reading every frame written before it. NOTE: frames still
    // in flight when a client starts the close count as received, although
    // browsers discard messages that arrive after close().
    this.saveSession(code !== 1006);
    for (const subscription of this.subscriptions.values()) {
      this.context.hub.unsubscribe(subscription);
    }
    this.subscriptions.clear();
    for (const channel of [...this.present]) {
      this.removePresence(channel);
    }
    this.monitor.closed(this.sentCode ?? code, this.closeLabel);
    this.onClosed(this);
  }
}

/** Marks a command that already sent its own reply. */
class Deferred {}
const DEFERRED = new Deferred();

/** A reply result that is JSON text already. */
class RawJson {
  constructor(readonly text: string) {}
}
