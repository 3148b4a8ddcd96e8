import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ApiKeys } from "../auth/api-keys.js";
import type { StreamPosition } from "../broker/broker.js";
import { validateChannel } from "../channel.js";
import { connectionId } from "../connection-id.js";
import type { EncodedPublication } from "../encoded.js";
import { protocolError } from "../errors.js";
import type { Subscriber, Subscription } from "../hub.js";
import { historyLimit } from "../history-limit.js";
import { checkIdempotencyKey } from "../idempotency-key.js";
import { ConnectionMonitor } from "../transports/connection-monitor.js";
import type { Transport, TransportContext } from "../transports/transport.js";
import { toGrpcError } from "./grpc-errors.js";

/** The .proto file, two levels up from both src/grpc and dist/grpc. */
const PROTO_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "proto", "herald", "v1", "herald.proto");

type Serialize = (value: unknown) => Buffer;

interface Loaded {
  service: grpc.ServiceDefinition;
  /** Serializer of SubscribeEvent, used once per publication. */
  serializeEvent: Serialize;
}

function loadService(): Loaded {
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, defaults: true, oneofs: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    herald: { v1: { Herald: { service: grpc.ServiceDefinition } } };
  };
  const service = { ...root.herald.v1.Herald.service };
  const subscribe = service.Subscribe as grpc.MethodDefinition<unknown, unknown>;
  const serializeEvent = subscribe.responseSerialize as Serialize;
  // Publications are serialized once per node and the same bytes go to
  // every stream, so the stream's serializer passes Buffers through.
  service.Subscribe = {
    ...subscribe,
    responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serializeEvent(value)),
  };
  return { service, serializeEvent };
}

/** Turns JSON text given as bytes into Herald's compact form, or throws invalid_json. */
function normalizeData(data: Buffer | undefined): string {
  const text = data === undefined ? "" : data.toString("utf8");
  if (text.trim() === "") {
    throw protocolError("invalid_json", "The data field is empty; send JSON text as UTF-8 bytes.");
  }
  try {
    return JSON.stringify(JSON.parse(text));
  } catch (error) {
    throw protocolError("invalid_json", `The data field is not valid JSON: ${(error as Error).message}`);
  }
}

/** Peer address without the scheme and port, as net sockets report it. */
function peerAddress(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): string {
  const peer = call.getPeer();
  const match = /^ipv[46]:\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return match ? match[1]! : peer;
}

interface PublishRequest {
  channel: string;
  data: Buffer;
  idempotencyKey: string;
}

interface SubscribeRequest {
  channels: Array<{ channel: string; since: { epoch: string; offset: number } | null }>;
}

/**
 * The gRPC API for backends on its own port: publish, history, presence,
 * info and a server-streaming Subscribe with the same resume guarantees as
 * the browser transports. Off unless `grpc.enabled` is set.
 */
export class GrpcTransport implements Transport {
  readonly name = "grpc";
  private readonly server: grpc.Server;
  private readonly keys: ApiKeys;
  private readonly serializeEvent: Serialize;
  private readonly streams = new Set<GrpcStream>();
  private readonly heartbeat: NodeJS.Timeout;
  private inFlight = 0;
  private boundPort = 0;

  constructor(private readonly context: TransportContext) {
    const loaded = loadService();
    this.serializeEvent = loaded.serializeEvent;
    this.keys = new ApiKeys(context.config.apiKeys);
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": context.config.limits.maxBodyBytes,
      "grpc.keepalive_time_ms": context.config.grpc.keepaliveMs,
      "grpc.keepalive_timeout_ms": 20_000,
    });
    this.server.addService(loaded.service, {
      Publish: this.unary((request: PublishRequest) => this.publish(request)),
      PublishBatch: this.unary((request: { items: PublishRequest[] }) => this.publishBatch(request.items)),
      History: this.unary((request: { channel: string; since: number; limit: number }) => this.history(request)),
      Presence: this.unary((request: { channel: string }) => this.presence(request.channel)),
      Info: this.unary(async () => this.info()),
      Subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, unknown>) => this.subscribe(call),
    });
    this.heartbeat = setInterval(() => this.beat(), context.config.grpc.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Binds the configured port; resolves with the port actually bound. */
  async listen(): Promise<number> {
    const { host, port, cert, key } = this.context.config.grpc;
    const credentials =
      cert && key
        ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(cert), private_key: readFileSync(key) }])
        : grpc.ServerCredentials.createInsecure();
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    return this.boundPort;
  }

  get port(): number {
    return this.boundPort;
  }

  connectionCount(): number {
    return this.streams.size;
  }

  /** Ends every Subscribe stream with UNAVAILABLE and lets unary calls in flight finish. */
  async drain(): Promise<void> {
    for (const stream of this.streams) {
      stream.end(protocolError("draining", "The node is draining; subscribe on another node from your last position."));
    }
    while (this.inFlight > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    clearInterval(this.heartbeat);
  }

  destroy(): void {
    clearInterval(this.heartbeat);
    this.server.forceShutdown();
  }

  /** Wraps a unary handler with API-key checks, error mapping and in-flight counting. */
  private unary<Request>(handler: (request: Request) => Promise<unknown>): grpc.handleUnaryCall<Request, unknown> {
    return (call, callback) => {
      this.inFlight++;
      Promise.resolve()
        .then(() => {
          this.authorize(call);
          return handler(call.request);
        })
        .then(
          (response) => callback(null, response),
          (error: unknown) => callback(toGrpcError(error)),
        )
        .finally(() => {
          this.inFlight--;
        });
    };
  }

  private authorize(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): void {
    const header = call.metadata.get("authorization")[0];
    this.keys.verify(typeof header === "string" ? header : undefined, peerAddress(call));
  }

  private async publish(request: PublishRequest): Promise<unknown> {
    const data = normalizeData(request.data);
    // proto3 sends an absent string as "", so an empty key means none.
    const key = checkIdempotencyKey(request.idempotencyKey || undefined);
    const publication = await this.context.hub.publish(request.channel, data, key);
    return { channel: publication.channel, epoch: publication.epoch, offset: publication.offset };
  }

  private async publishBatch(items: PublishRequest[]): Promise<unknown> {
    if (items.length > this.context.config.limits.maxBatchItems) {
      throw protocolError("payload_too_large", `The batch has ${items.length} items; the maximum is ${this.context.config.limits.maxBatchItems}.`);
    }
    // Validate every item first, so an invalid batch publishes nothing.
    const prepared = items.map((item, index) => {
      try {
        validateChannel(item.channel);
        return { channel: item.channel, data: normalizeData(item.data), key: checkIdempotencyKey(item.idempotencyKey || undefined) };
      } catch (error) {
        const herald = error as ReturnType<typeof protocolError>;
        throw protocolError(herald.code, `Item ${index}: ${herald.message}`);
      }
    });
    const results = [];
    for (const item of prepared) {
      const publication = await this.context.hub.publish(item.channel, item.data, item.key);
      results.push({ channel: publication.channel, epoch: publication.epoch, offset: publication.offset });
    }
    return { results };
  }

  private async history(request: { channel: string; since: number; limit: number }): Promise<unknown> {
    const namespace = this.context.hub.namespaceOf(request.channel);
    // proto3 sends an absent limit as 0, which asks for the default.
    const limit = historyLimit(request.limit === 0 ? undefined : request.limit, namespace.historySize, "invalid_command");
    const history = await this.context.hub.history(request.channel, request.since, limit);
    return {
      channel: request.channel,
      epoch: history.epoch,
      top: history.top,
      earliest: history.earliest,
      publications: history.publications.map((publication) => ({
        channel: publication.channel,
        epoch: publication.epoch,
        offset: publication.offset,
        data: Buffer.from(publication.data),
      })),
    };
  }

  private async presence(channel: string): Promise<unknown> {
    validateChannel(channel);
    if (!this.context.hub.namespaceOf(channel).presence) {
      throw protocolError("forbidden", `Presence is not enabled for ${channel}.`);
    }
    const entries = await this.context.hub.broker.presenceList(channel);
    return { channel, clients: entries.map((entry) => ({ client: entry.clientId, user: entry.user, node: entry.node })) };
  }

  private info(): unknown {
    return {
      node: this.context.nodeId,
      broker: this.context.hub.broker.kind,
      state: this.context.state(),
      connections: this.streams.size,
      channels: this.context.hub.channelCount,
    };
  }

  private subscribe(call: grpc.ServerWritableStream<SubscribeRequest, unknown>): void {
    const stream = new GrpcStream(call, this.context, this.serializeEvent, (closed) => this.streams.delete(closed));
    try {
      this.authorize(call);
      if (this.context.state() !== "running") {
        throw protocolError("draining");
      }
    } catch (error) {
      stream.end(error);
      return;
    }
    this.streams.add(stream);
    stream.start(call.request.channels ?? []).catch((error: unknown) => stream.end(error));
  }

  private beat(): void {
    const bytes = this.serializeEvent({ heartbeat: { timeMs: Date.now() } });
    for (const stream of this.streams) {
      stream.write(bytes);
    }
  }
}

/** One Subscribe call: a Subscriber of the hub that writes SubscribeEvents. */
class GrpcStream implements Subscriber {
  private readonly subscriptions: Subscription[] = [];
  private ended = false;
  private readonly monitor: ConnectionMonitor;
  /** Bytes handed to grpc-js and not yet flushed; its stream counts objects, not bytes. */
  private queuedBytes = 0;
  /** Sizes of the queued writes, oldest first; write callbacks fire in the same order. */
  private readonly queuedSizes: number[] = [];
  /** Bytes of recovered history that may sit above the outbound buffer limit. */
  private recoveryAllowance = 0;
  private readonly flushedOne = (): void => {
    this.queuedBytes -= this.queuedSizes.shift() ?? 0;
    if (this.queuedBytes <= this.context.config.limits.outboundBufferBytes) {
      this.recoveryAllowance = 0;
    }
  };

  constructor(
    private readonly call: grpc.ServerWritableStream<SubscribeRequest, unknown>,
    private readonly context: TransportContext,
    private readonly serializeEvent: Serialize,
    private readonly onEnd: (stream: GrpcStream) => void,
  ) {
    this.monitor = new ConnectionMonitor(context, "grpc", connectionId(), peerAddress(call));
    call.on("cancelled", () => this.release());
    call.on("close", () => this.release());
    call.on("error", () => this.release());
  }

  async start(channels: SubscribeRequest["channels"]): Promise<void> {
    if (channels.length === 0) {
      throw protocolError("missing_channel", "Name at least one channel to subscribe to.");
    }
    const limit = this.context.config.limits.maxChannelsPerConnection;
    if (channels.length > limit) {
      throw protocolError("too_many_channels", `A stream may subscribe to at most ${limit} channels.`);
    }
    const names = new Set<string>();
    for (const entry of channels) {
      validateChannel(entry.channel);
      if (names.has(entry.channel)) {
        throw protocolError("already_subscribed", `Channel ${entry.channel} is named twice.`);
      }
      names.add(entry.channel);
    }

    for (const entry of channels) {
      const since: StreamPosition | undefined = entry.since ? { epoch: entry.since.epoch, offset: entry.since.offset } : undefined;
      const result = await this.context.hub.subscribe(this, entry.channel, since);
      if (this.ended) {
        this.context.hub.unsubscribe(result.subscription);
        return;
      }
      this.subscriptions.push(result.subscription);
      const offset = result.recovered && since ? since.offset : result.top;
      this.write(this.serializeEvent({ subscribed: { channel: entry.channel, epoch: result.epoch, offset, recovered: result.recovered } }));
      if (!result.recovered && since !== undefined) {
        // The position is in another epoch or older than history, so events after it were lost.
        this.gap(result.subscription, { epoch: result.epoch, offset: result.top });
      }
      for (const event of result.publications) {
        this.write(event.shared("grpc", encodePublication, this.serializeEvent), true);
      }
      result.subscription.activate();
    }
  }

  deliver(event: EncodedPublication): void {
    this.write(event.shared("grpc", encodePublication, this.serializeEvent));
  }

  gap(subscription: Subscription, position: StreamPosition): void {
    this.write(this.serializeEvent({ gap: { channel: subscription.channel, epoch: position.epoch, offset: position.offset } }));
  }

  overflow(): void {
    this.monitor.slowConsumer(this.queuedBytes);
    this.end(protocolError("slow_consumer", "The stream fell behind; subscribe again from your last position."));
  }

  /**
   * Queues bytes for the client. Recovered history may exceed the outbound
   * buffer, since its size is bounded by the namespace's history; live
   * events past the buffer and that allowance end the stream as slow.
   */
  write(bytes: Buffer, recovery = false): void {
    if (this.ended) {
      return;
    }
    if (recovery) {
      this.recoveryAllowance += bytes.length;
    } else if (this.queuedBytes > this.context.config.limits.outboundBufferBytes + this.recoveryAllowance) {
      this.overflow();
      return;
    }
    this.queuedBytes += bytes.length;
    this.queuedSizes.push(bytes.length);
    this.call.write(bytes, this.flushedOne);
  }

  /** Ends the stream with the error's gRPC status. */
  end(error: unknown): void {
    if (this.ended) {
      return;
    }
    this.release();
    // grpc-js turns an 'error' event into the call's final status, sent
    // after the messages already queued.
    // NOTE: a client that never reads never receives that status; its
    // stream holds at most the outbound buffer until HTTP/2 keepalive or
    // the client ends it.
    this.call.emit("error", toGrpcError(error));
  }

  private release(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    for (const subscription of this.subscriptions) {
      this.context.hub.unsubscribe(subscription);
    }
    this.monitor.closed(undefined, "stream ended");
    this.onEnd(this);
  }
}

function encodePublication(event: EncodedPublication, serializeEvent: Serialize): Buffer {
  const { channel, epoch, offset, data } = event.publication;
  return serializeEvent({ publication: { channel, epoch, offset, data: Buffer.from(data) } });
}
