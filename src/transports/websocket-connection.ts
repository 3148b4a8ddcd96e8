import { randomUUID } from "node:crypto";
import type { Duplex } from "node:stream";
import { WebSocket } from "ws";
import type { Identity } from "../auth/identity.js";
import { ANONYMOUS, checkPublish, checkSubscribe } from "../auth/identity.js";
import type { StreamPosition } from "../broker/broker.js";
import { validateChannel } from "../channel.js";
import type { EncodedPublication } from "../encoded.js";
import { HeraldError, protocolError, toHeraldError } from "../errors.js";
import type { Subscriber, Subscription } from "../hub.js";
import type { Logger } from "../log.js";
import type { TransportContext } from "./transport.js";
import type { Flushable, FlushQueue } from "./websocket-frames.js";
import type { Command, RequestId } from "./websocket-protocol.js";
import { CommandError, errorFrame, parseCommand, replyFrame } from "./websocket-protocol.js";

/** What a session stores so that a reconnect on any node restores it. */
interface SessionState {
  user: string;
  positions: Record<string, StreamPosition>;
}

/** One WebSocket client: its commands, subscriptions and liveness. */
export class WebSocketConnection implements Subscriber, Flushable {
  readonly id = randomUUID();
  private identity: Identity = ANONYMOUS;
  private connected = false;
  private session: string | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Channels with a subscribe command still running, so a second one is rejected. */
  private readonly subscribing = new Set<string>();
  /** Commands received whose reply is not sent yet. */
  private inFlight = 0;
  missedPongs = 0;
  private closing = false;
  private readonly log: Logger;
  /** Pre-framed events waiting for the next flush: one frame, or several in order. */
  private queued: Buffer | Buffer[] | undefined;
  private queuedBytes = 0;

  constructor(
    readonly socket: WebSocket,
    /** The TCP socket under `socket`, for writing pre-framed events (see flush). */
    private readonly raw: Duplex,
    private readonly flushQueue: FlushQueue,
    private readonly context: TransportContext,
    private readonly onClosed: (connection: WebSocketConnection) => void,
    remoteAddress: string,
  ) {
    this.log = context.log.child({ connection: this.id, transport: "websocket", remote: remoteAddress });
    socket.on("message", (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    socket.on("pong", () => {
      this.missedPongs = 0;
    });
    socket.on("close", (code) => this.onClose(code));
    socket.on("error", (error) => this.log.debug({ err: error }, "websocket error"));
  }

  /** Whether the connection is waiting on nothing: no command in flight, nothing unsent. */
  idle(): boolean {
    return this.inFlight === 0 && this.queued === undefined && this.socket.bufferedAmount === 0;
  }

  /** Closes the WebSocket with a code and a reason, and forces it shut if the peer never answers. */
  close(code: number, reason: string): void {
    if (this.closing) {
      return;
    }
    // Events queued before the close go out before the close frame.
    this.flush();
    this.closing = true;
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
    if (this.overLimit()) {
      return;
    }
    this.send(JSON.stringify({ type: "gap", channel: subscription.channel, epoch: position.epoch, offset: position.offset }));
  }

  overflow(): void {
    this.closeAsSlow();
  }

  /**
   * Queues a pre-framed event for the next flush. The same frame object
   * is shared by every subscriber, so this does no per-subscriber encoding.
   */
  private enqueue(frame: Buffer): void {
    if (this.overLimit()) {
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
   * (corked when there are several). This bypasses ws.send, which is safe
   * because of these invariants: per-message deflate is off, so ws never
   * compresses or holds frames back; Herald never sends Blobs, the only
   * other reason ws's sender queues; ws writes every frame it sends
   * synchronously and whole, so frames never interleave; and nothing is
   * written once the WebSocket is no longer OPEN, because after ws sends
   * a close frame no data frame may follow (RFC 6455 section 5.5.1).
   */
  flush(): void {
    const queued = this.queued;
    if (queued === undefined) {
      return;
    }
    this.queued = undefined;
    this.queuedBytes = 0;
    if (this.closing || this.socket.readyState !== WebSocket.OPEN) {
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
   * Sends a message through ws, after the queued events so that the
   * connection's messages keep their order.
   */
  private send(message: string): void {
    this.flush();
    this.socket.send(message);
  }

  /**
   * Whether the connection is closing, or has more bytes waiting than the
   * outbound limit, in which case it is closed as a slow consumer. Waiting
   * bytes are the queue plus what the socket holds unsent
   * (ws.bufferedAmount includes the TCP socket's writableLength, and so
   * the frames flush wrote there).
   */
  private overLimit(): boolean {
    if (this.closing) {
      return true;
    }
    if (this.queuedBytes + this.socket.bufferedAmount > this.context.config.limits.outboundBufferBytes) {
      this.closeAsSlow();
      return true;
    }
    return false;
  }

  private closeAsSlow(): void {
    this.log.info({ buffered: this.queuedBytes + this.socket.bufferedAmount }, "slow consumer closed");
    this.close(4008, "slow consumer");
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closing) {
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
    this.inFlight++;
    this.execute(command)
      .then((result) => this.reply(command.id, result))
      .catch((error: unknown) => this.replyError(command.id, error))
      .finally(() => {
        this.inFlight--;
      });
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
    this.log.debug({ code: error.code }, "connection closed for a protocol error");
    this.close(error.close ?? 1008, error.message.slice(0, 120));
  }

  private async execute(command: Command): Promise<unknown> {
    if (command.type === "connect") {
      return this.connect(command.token, command.session);
    }
    if (!this.connected) {
      // A client that skips connect is anonymous.
      await this.connect(undefined, undefined);
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
        this.identity = await this.context.auth.authenticate(command.token);
        return {};
      case "ping":
        return {};
    }
  }

  private async connect(token: string | undefined, session: string | undefined): Promise<unknown> {
    if (this.connected) {
      throw protocolError("bad_request", "The connection is already connected.");
    }
    this.identity = await this.context.auth.authenticate(token);
    this.connected = true;

    const restored: Array<{ channel: string; recovered: boolean }> = [];
    if (session !== undefined) {
      const saved = await this.context.hub.broker.loadSession(session).catch(() => undefined);
      const state = saved === undefined ? undefined : (JSON.parse(saved) as SessionState);
      if (state && state.user === this.identity.user) {
        this.session = session;
        for (const [channel, position] of Object.entries(state.positions)) {
          const result = await this.subscribe(undefined, channel, position).catch(() => undefined);
          if (result && !(result instanceof Deferred)) restored.push({ channel, recovered: result.recovered });
        }
      }
    }
    this.session ??= randomUUID();
    this.log.debug({ user: this.identity.user, session: this.session }, "client connected");
    return { client: this.id, session: this.session, node: this.context.nodeId, user: this.identity.user, restored };
  }

  /**
   * Subscribes and replies with the channel's epoch and offset, then sends
   * the recovered events, then goes live, all in one tick so that no live
   * event can slip between them.
   */
  private async subscribe(id: RequestId | undefined, channel: string, since: StreamPosition | undefined): Promise<{ recovered: boolean } | Deferred> {
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

    const reply = { channel, epoch: result.epoch, offset: since?.offset ?? result.top, recovered: result.recovered };
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
    return id === undefined ? { recovered: result.recovered } : DEFERRED;
  }

  private async unsubscribe(channel: string): Promise<unknown> {
    validateChannel(channel);
    const subscription = this.subscriptions.get(channel);
    if (!subscription) {
      throw protocolError("not_subscribed", `Not subscribed to ${channel}.`);
    }
    this.subscriptions.delete(channel);
    this.context.hub.unsubscribe(subscription);
    this.saveSession();
    return {};
  }

  private async publish(channel: string, data: unknown): Promise<unknown> {
    validateChannel(channel);
    if (data === undefined) {
      throw protocolError("invalid_command", "Invalid publish command (data: required).");
    }
    checkPublish(this.identity, this.context.hub.namespaceOf(channel), channel);
    const publication = await this.context.hub.publish(channel, JSON.stringify(data));
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

  private saveSession(): void {
    if (this.session === undefined) {
      return;
    }
    const positions: Record<string, StreamPosition> = {};
    for (const [channel, subscription] of this.subscriptions) {
      positions[channel] = { epoch: subscription.epoch, offset: subscription.offset };
    }
    const state: SessionState = { user: this.identity.user, positions };
    this.context.hub.broker
      .saveSession(this.session, JSON.stringify(state), this.context.config.sessionTtlMs)
      .catch((error: unknown) => this.log.warn({ err: error }, "session save failed"));
  }

  private onClose(code: number): void {
    this.closing = true;
    this.saveSession();
    for (const subscription of this.subscriptions.values()) {
      this.context.hub.unsubscribe(subscription);
    }
    this.subscriptions.clear();
    this.log.debug({ code }, "client disconnected");
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
