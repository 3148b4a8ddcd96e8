import type { Logger } from "../../log.js";
import type {
  Broker,
  BrokerListener,
  HistoryQuery,
  HistoryResult,
  NodeInfo,
  PresenceEntry,
  Publication,
  PublishOptions,
} from "../broker.js";
import { newEpoch } from "../epoch.js";
import { createCommandClient, createSubscriberClient, type CommandClient, type RedisConnectionSettings } from "./connection.js";
import { RedisKeys } from "./keys.js";
import { parseMessage } from "./messages.js";
import { RedisSubscriber } from "./subscriber.js";

export interface RedisBrokerSettings extends RedisConnectionSettings {
  /** Prefix of every key and pub/sub channel. */
  readonly keyPrefix: string;
  /**
   * How long a channel's epoch and top offset live after its last publish
   * or read, in ms. Longer than any history TTL, so that a subscriber of a
   * channel whose history expired resumes without a false gap notice.
   */
  readonly metaTtlMs: number;
  /**
   * How long meta that only reads created lives, in ms (default 5 min).
   * The node renews it for channels it subscribes to, so their subscribers
   * keep the epoch however long the first publish takes.
   */
  readonly unpublishedMetaTtlMs?: number;
  /** How long start() waits for Redis before the node starts unavailable, in ms. */
  readonly startTimeoutMs?: number;
}

/** Cluster only: delay of the second catch-up after sharded subscribers came back, in ms. */
const CLUSTER_SECOND_RESYNC_MS = 1_000;

/** Default of `unpublishedMetaTtlMs`, in ms. */
const DEFAULT_UNPUBLISHED_META_TTL_MS = 300_000;

/** Renewals per unpublished meta TTL, so that one failed round still leaves time for the next. */
const META_RENEWALS_PER_TTL = 3;

/** Meta renewals sent before the node waits for their replies, to bound what is in flight. */
const META_RENEWAL_BATCH = 1_000;

/** Default idempotency window when the caller gives none, in ms. */
const DEFAULT_IDEMPOTENCY_WINDOW_MS = 300_000;

/**
 * The engine for many nodes: Redis standalone or Redis Cluster. A Lua
 * script assigns offsets, keeps history in a capped stream and fans each
 * event out over (sharded) pub/sub. When the node's subscriber connection
 * drops, events published meanwhile never reach it, so on its return the
 * engine calls onResync and the hub fills the hole from history.
 */
export class RedisBroker implements Broker {
  readonly kind = "redis";
  private readonly keys: RedisKeys;
  private readonly commands: CommandClient;
  private readonly subscriber: RedisSubscriber;
  private listener: BrokerListener | undefined;
  private commandsReady = false;
  private lastAvailable = false;
  /** Set when delivery stopped; cleared by the resync once both connections are back. */
  private resyncNeeded = false;
  private closed = false;
  /** Channels this node subscribes to, whose meta it renews. */
  private readonly subscribedChannels = new Set<string>();
  private readonly unpublishedMetaTtlMs: number;
  private renewer: NodeJS.Timeout | undefined;

  constructor(
    private readonly settings: RedisBrokerSettings,
    private readonly log: Logger,
  ) {
    this.keys = new RedisKeys(settings.keyPrefix);
    this.unpublishedMetaTtlMs = settings.unpublishedMetaTtlMs ?? DEFAULT_UNPUBLISHED_META_TTL_MS;
    this.commands = createCommandClient(settings);
    this.commands.on("ready", () => {
      this.commandsReady = true;
      this.update();
    });
    this.commands.on("close", () => {
      this.commandsReady = false;
      this.update();
    });
    this.commands.on("error", (error: Error) => this.log.debug({ err: error }, "redis connection error"));

    this.subscriber = new RedisSubscriber(
      createSubscriberClient(settings),
      {
        message: (eventsChannel, message) => this.onMessage(eventsChannel, message),
        state: (up) => {
          if (!up) {
            this.resyncNeeded = true;
          }
          this.update();
          if (up && this.subscriber.sharded) {
            // The settle delay is a guess at when SSUBSCRIBE took effect, so a
            // second catch-up later covers a resubscribe that took longer.
            setTimeout(() => this.available() && this.listener?.onResync(), CLUSTER_SECOND_RESYNC_MS).unref();
          }
        },
      },
      log,
    );
  }

  /** Connects both sides; a Redis that stays unreachable leaves the node started but unavailable. */
  async start(listener: BrokerListener): Promise<void> {
    this.listener = listener;
    listener.onAvailability(false);
    this.renewer = setInterval(() => void this.renewSubscribedMeta(), this.unpublishedMetaTtlMs / META_RENEWALS_PER_TTL);
    this.renewer.unref();
    const connecting = Promise.all([this.commands.connect(), this.subscriber.connect()]).catch((error: unknown) => {
      this.log.warn({ err: error }, "redis not reachable at start; retrying in the background");
    });
    await connecting;
    const deadline = Date.now() + (this.settings.startTimeoutMs ?? 5_000);
    while (!this.available() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.resyncNeeded = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.renewer);
    this.subscriber.close();
    this.commands.disconnect();
  }

  available(): boolean {
    return this.commandsReady && this.subscriber.isUp();
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    const time = Date.now();
    const key = options.idempotencyKey;
    const reply = (await this.commands.heraldPublish(
      this.keys.meta(channel),
      this.keys.history(channel),
      this.keys.idempotency(channel, key ?? ""),
      this.keys.events(channel),
      data,
      time,
      options.historySize,
      options.historyTtlMs,
      Math.max(this.settings.metaTtlMs, options.historyTtlMs),
      options.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS,
      key === undefined ? "0" : "1",
      newEpoch(),
      this.publishCommand(),
      channel,
    )) as [string, number, number, number];
    return { channel, epoch: String(reply[0]), offset: Number(reply[1]), time: Number(reply[2]), data };
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const reply = (await this.commands.heraldHistory(
      this.keys.meta(channel),
      this.keys.history(channel),
      query.since,
      query.limit,
      newEpoch(),
      this.settings.metaTtlMs,
      this.unpublishedMetaTtlMs,
    )) as [string, number, number, Array<[string, string[]]>];
    const epoch = String(reply[0]);
    const publications = reply[3].map(([id, fields]) => {
      const entry = fieldMap(fields);
      return {
        channel,
        epoch,
        offset: Number(id.slice(0, id.indexOf("-"))),
        data: entry.d ?? "null",
        time: Number(entry.t ?? 0),
      };
    });
    return { epoch, top: Number(reply[1]), earliest: Number(reply[2]), publications };
  }

  subscribe(channel: string): Promise<void> {
    this.subscribedChannels.add(channel);
    return this.subscriber.subscribe(this.keys.events(channel));
  }

  unsubscribe(channel: string): Promise<void> {
    this.subscribedChannels.delete(channel);
    return this.subscriber.unsubscribe(this.keys.events(channel));
  }

  /**
   * Extends the meta of every channel this node subscribes to by the
   * unpublished meta TTL, so that a channel waiting for its first publish
   * keeps its epoch. PEXPIRE GT never shortens the longer TTL of published
   * meta and creates no key, so meta lost anyway gets a new epoch on the
   * next read and subscribers a gap notice. Commands go out in batches on
   * the auto-pipelined connection; each touches one key, so this works on
   * a cluster too.
   */
  async renewSubscribedMeta(): Promise<void> {
    if (!this.available()) {
      return;
    }
    const channels = [...this.subscribedChannels];
    for (let start = 0; start < channels.length; start += META_RENEWAL_BATCH) {
      const batch = channels.slice(start, start + META_RENEWAL_BATCH);
      const results = await Promise.allSettled(
        batch.map((channel) => this.commands.pexpire(this.keys.meta(channel), this.unpublishedMetaTtlMs, "GT")),
      );
      const failure = results.find((result) => result.status === "rejected");
      if (failure !== undefined) {
        this.log.debug({ err: failure.reason }, "renewing channel meta failed; the next round retries");
        return;
      }
    }
  }

  async saveSession(id: string, state: string, ttlMs: number): Promise<void> {
    await this.commands.set(this.keys.session(id), state, "PX", Math.max(ttlMs, 1));
  }

  async loadSession(id: string): Promise<string | undefined> {
    return (await this.commands.get(this.keys.session(id))) ?? undefined;
  }

  async deleteSession(id: string): Promise<void> {
    await this.commands.del(this.keys.session(id));
  }

  async presenceAdd(channel: string, entry: PresenceEntry, ttlMs: number): Promise<void> {
    await this.commands.heraldPresenceAdd(
      ...this.presenceArgs(channel),
      entry.clientId,
      JSON.stringify(entry),
      Math.max(ttlMs, 1),
    );
  }

  async presenceRemove(channel: string, clientId: string): Promise<void> {
    await this.commands.heraldPresenceRemove(...this.presenceArgs(channel), clientId);
  }

  async presenceList(channel: string): Promise<PresenceEntry[]> {
    const reply = (await this.commands.heraldPresenceList(...this.presenceArgs(channel))) as Array<string | null>;
    return reply.filter((text): text is string => text !== null).map((text) => JSON.parse(text) as PresenceEntry);
  }

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    await this.commands.heraldNodeRegister(
      this.keys.nodes(),
      this.keys.nodeInfo(),
      Date.now(),
      info.id,
      JSON.stringify(info),
      Math.max(ttlMs, 1),
    );
  }

  async removeNode(id: string): Promise<void> {
    await Promise.all([this.commands.zrem(this.keys.nodes(), id), this.commands.hdel(this.keys.nodeInfo(), id)]);
  }

  async listNodes(): Promise<NodeInfo[]> {
    const reply = (await this.commands.heraldNodeList(this.keys.nodes(), this.keys.nodeInfo(), Date.now())) as Array<
      string | null
    >;
    return reply.filter((text): text is string => text !== null).map((text) => JSON.parse(text) as NodeInfo);
  }

  /** Keys and arguments every presence script starts with. */
  private presenceArgs(channel: string): [string, string, number, string, string, string] {
    return [
      this.keys.presence(channel),
      this.keys.presenceEntries(channel),
      Date.now(),
      this.keys.events(channel),
      this.publishCommand(),
      channel,
    ];
  }

  private publishCommand(): string {
    return this.subscriber.sharded ? "SPUBLISH" : "PUBLISH";
  }

  private onMessage(eventsChannel: string, message: string): void {
    const listener = this.listener;
    if (listener === undefined || this.keys.channelOf(eventsChannel) === undefined) {
      return;
    }
    const parsed = parseMessage(message);
    if (parsed === undefined) {
      this.log.warn({ channel: eventsChannel }, "malformed message on a herald pub/sub channel ignored");
    } else if (parsed.kind === "publication") {
      listener.onPublication(parsed.publication);
    } else {
      listener.onPresence(parsed.event);
    }
  }

  /** Reports availability changes and starts the resync once both connections are back. */
  private update(): void {
    if (this.closed) {
      return;
    }
    const available = this.available();
    if (available !== this.lastAvailable) {
      this.lastAvailable = available;
      this.log.info({ available }, available ? "redis available" : "redis unavailable");
      this.listener?.onAvailability(available);
    }
    if (available && this.resyncNeeded) {
      this.resyncNeeded = false;
      this.listener?.onResync();
    }
  }
}

function fieldMap(fields: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    map[fields[i]!] = fields[i + 1]!;
  }
  return map;
}
