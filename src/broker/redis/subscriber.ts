import { Cluster, type Redis } from "ioredis";
import type { Logger } from "../../log.js";

export interface SubscriberEvents {
  /** A message on one of the subscribed pub/sub channels. */
  message(eventsChannel: string, message: string): void;
  /** Delivery stopped (false) or is back with every channel subscribed again (true). */
  state(up: boolean): void;
}

/**
 * Cluster only: time between ioredis reporting its sharded subscribers
 * ready and the resync, in ms. ioredis sends the SSUBSCRIBE commands
 * without reporting when they are answered, so the engine waits a moment
 * before reading history.
 */
const CLUSTER_RESUBSCRIBE_SETTLE_MS = 300;

/**
 * The node's pub/sub side. On standalone Redis it is one connection with
 * SUBSCRIBE; on a cluster, ioredis's sharded subscribers with SSUBSCRIBE.
 * It tracks the channels the node wants, subscribes them again after a
 * reconnect, and reports when delivery stops and when it is back, so the
 * engine can ask the hub to catch up on what was published meanwhile.
 */
export class RedisSubscriber {
  private readonly channels = new Set<string>();
  private up = false;
  private closed = false;
  private settleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Redis | Cluster,
    private readonly events: SubscriberEvents,
    private readonly log: Logger,
  ) {
    if (client instanceof Cluster) {
      client.on("smessage", (channel: string, message: string) => events.message(channel, message));
      client.on("-node", () => this.setUp(false));
      client.on("close", () => this.setUp(false));
      client.on("subscribersReady", () => this.settle());
      client.on("ready", () => this.settle());
    } else {
      client.on("message", (channel: string, message: string) => events.message(channel, message));
      client.on("close", () => this.setUp(false));
      client.on("ready", () => void this.resubscribe());
    }
    client.on("error", (error: Error) => this.log.debug({ err: error }, "redis subscriber connection error"));
  }

  get sharded(): boolean {
    return this.client instanceof Cluster;
  }

  isUp(): boolean {
    return this.up;
  }

  async connect(): Promise<void> {
    await this.client.connect();
  }

  /** Subscribes the node to a pub/sub channel; fails while the connection is down. */
  async subscribe(eventsChannel: string): Promise<void> {
    this.channels.add(eventsChannel);
    if (!this.up) {
      throw new Error("The Redis subscriber connection is down.");
    }
    if (this.client instanceof Cluster) {
      await this.client.ssubscribe(eventsChannel);
    } else {
      await this.client.subscribe(eventsChannel);
    }
  }

  async unsubscribe(eventsChannel: string): Promise<void> {
    this.channels.delete(eventsChannel);
    if (!this.up) {
      return;
    }
    if (this.client instanceof Cluster) {
      await this.client.sunsubscribe(eventsChannel);
    } else {
      await this.client.unsubscribe(eventsChannel);
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.settleTimer);
    this.client.disconnect();
  }

  /** Standalone: subscribes every wanted channel on the new connection, then reports delivery back. */
  private async resubscribe(): Promise<void> {
    const client = this.client as Redis;
    try {
      if (this.channels.size > 0) {
        await client.subscribe(...this.channels);
      }
      this.setUp(true);
    } catch (error) {
      // The connection dropped again; its next "ready" tries again.
      this.log.warn({ err: error, channels: this.channels.size }, "redis resubscribe failed");
    }
  }

  private settle(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      if ((this.client as Cluster).status === "ready") {
        this.setUp(true);
      }
    }, this.up ? 0 : CLUSTER_RESUBSCRIBE_SETTLE_MS);
    this.settleTimer.unref();
  }

  private setUp(up: boolean): void {
    if (this.closed || this.up === up) {
      return;
    }
    this.up = up;
    this.events.state(up);
  }
}
