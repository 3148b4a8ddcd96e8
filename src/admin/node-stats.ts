import type { Publication } from "../broker/broker.js";
import { isInternalChannel, type HeraldEvents } from "../events.js";
import type { Hub } from "../hub.js";
import type { NodeState } from "../transports/transport.js";

/** One node's view of itself, published on `$admin:stats` for every node's admin page. */
export interface NodeStats {
  node: string;
  state: NodeState;
  /** When the snapshot was taken, in ms since the Unix epoch. */
  time: number;
  startedAt: number;
  /** Interval between snapshots, in ms; a node silent for three intervals is gone. */
  intervalMs: number;
  connections: Record<string, number>;
  subscriptions: number;
  publishedPerSecond: number;
  deliveredPerSecond: number;
  /** Channels with local subscribers, most subscribers first, at most MAX_CHANNELS. */
  channels: Array<{ channel: string; subscribers: number; perSecond: number }>;
  /** Latest publications stored through this node, newest first. */
  latest: Array<{ channel: string; offset: number; time: number; data: string }>;
}

/** Node state that a snapshot reads. */
export interface NodeStatsSource {
  readonly nodeId: string;
  readonly hub: Hub;
  state(): NodeState;
  /** Open connections by transport name. */
  connections(): Record<string, number>;
}

const MAX_CHANNELS = 100;
const MAX_LATEST = 20;
/** Characters of a publication's data shown on the admin page. */
const MAX_PREVIEW = 200;

/**
 * Counts this node's publications and deliveries per interval from its
 * events and builds the snapshot the admin page shows. Memory stays
 * bounded: the per-channel counts are reset each interval and the list
 * of latest publications keeps MAX_LATEST entries.
 */
export class NodeStatsCollector {
  private readonly startedAt = Date.now();
  private windowStart = Date.now();
  private published = 0;
  private delivered = 0;
  private channelDeliveries = new Map<string, number>();
  private readonly latest: Publication[] = [];
  private readonly stopListening: () => void;

  constructor(
    events: HeraldEvents,
    private readonly source: NodeStatsSource,
    private readonly intervalMs: number,
  ) {
    this.stopListening = events.on((event) => {
      if (event.type === "publication" && !isInternalChannel(event.publication.channel)) {
        this.published++;
        this.latest.unshift(event.publication);
        if (this.latest.length > MAX_LATEST) {
          this.latest.pop();
        }
      } else if (event.type === "delivery" && !isInternalChannel(event.publication.channel)) {
        this.delivered += event.subscribers;
        const channel = event.publication.channel;
        this.channelDeliveries.set(channel, (this.channelDeliveries.get(channel) ?? 0) + 1);
      }
    });
  }

  /** Builds the snapshot and starts a new counting interval. */
  snapshot(): NodeStats {
    const now = Date.now();
    const seconds = Math.max(now - this.windowStart, 1) / 1000;
    const rate = (count: number) => Math.round((count / seconds) * 100) / 100;

    const local = this.source.hub.channelSubscribers().filter((entry) => !isInternalChannel(entry.channel));
    const channels = local
      .sort((a, b) => b.subscribers - a.subscribers)
      .slice(0, MAX_CHANNELS)
      .map((entry) => ({ ...entry, perSecond: rate(this.channelDeliveries.get(entry.channel) ?? 0) }));

    const stats: NodeStats = {
      node: this.source.nodeId,
      state: this.source.state(),
      time: now,
      startedAt: this.startedAt,
      intervalMs: this.intervalMs,
      connections: this.source.connections(),
      subscriptions: local.reduce((sum, entry) => sum + entry.subscribers, 0),
      publishedPerSecond: rate(this.published),
      deliveredPerSecond: rate(this.delivered),
      channels,
      latest: this.latest.map((publication) => ({
        channel: publication.channel,
        offset: publication.offset,
        time: publication.time,
        data: publication.data.length > MAX_PREVIEW ? `${publication.data.slice(0, MAX_PREVIEW)}…` : publication.data,
      })),
    };

    this.windowStart = now;
    this.published = 0;
    this.delivered = 0;
    this.channelDeliveries = new Map();
    return stats;
  }

  close(): void {
    this.stopListening();
  }
}
