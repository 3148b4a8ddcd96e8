import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { isInternalChannel, type HeraldEvent, type HeraldEvents } from "./events.js";
import type { NodeState } from "./transports/transport.js";

/** Node state that the metrics read at scrape time. */
export interface MetricsSource {
  readonly nodeId: string;
  state(): NodeState;
  /** Channels with at least one local subscriber. */
  channelCount(): number;
}

const NODE_STATES: NodeState[] = ["running", "draining", "closed"];

/** Publish-to-delivery latency buckets, in seconds: 1 ms to 10 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The node's Prometheus metrics, fed by its lifecycle events. Each node
 * has its own Registry, so several nodes in one process keep apart.
 * Channel names are never labels: their number is unbounded. Internal
 * channels (the admin page's `$admin:stats`) are left out of the counts.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly connections: Gauge<"transport">;
  private readonly connectionsOpened: Counter<"transport">;
  private readonly connectionsClosed: Counter<"transport" | "reason">;
  private readonly authFailures: Counter<"transport" | "code">;
  private readonly subscriptions: Gauge;
  private readonly publications: Counter;
  private readonly publicationBytes: Counter;
  private readonly deliveries: Counter;
  /**
   * The latency histogram's child for its only label set, the empty one.
   * Histogram.observe() builds a closure and label objects on every call,
   * and the child builds them once.
   */
  private readonly latency: { observe(value: number): void };
  private readonly drops: Counter<"transport" | "reason">;
  private readonly slowConsumers: Counter<"transport">;
  private readonly rateLimited: Counter<"transport">;
  private readonly brokerErrors: Counter<"operation">;
  private readonly brokerReconnects: Counter;
  private readonly brokerAvailable: Gauge;
  private readonly stopListening: () => void;

  constructor(events: HeraldEvents, source: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: "herald_node_info",
      help: "Always 1; the node label names this node.",
      labelNames: ["node"],
      registers,
    }).set({ node: source.nodeId }, 1);
    new Gauge({
      name: "herald_node_state",
      help: "1 for the node's current lifecycle state (running, draining, closed), 0 for the others.",
      labelNames: ["state"],
      registers,
      collect() {
        const current = source.state();
        for (const state of NODE_STATES) {
          this.set({ state }, state === current ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: "herald_channels",
      help: "Channels with at least one subscriber on this node.",
      registers,
      collect() {
        this.set(source.channelCount());
      },
    });

    this.connections = new Gauge({
      name: "herald_connections",
      help: "Open client connections, by transport.",
      labelNames: ["transport"],
      registers,
    });
    this.connectionsOpened = new Counter({
      name: "herald_connections_opened_total",
      help: "Client connections opened, by transport.",
      labelNames: ["transport"],
      registers,
    });
    this.connectionsClosed = new Counter({
      name: "herald_connections_closed_total",
      help: "Client connections closed, by transport and reason (the close code's name for WebSocket).",
      labelNames: ["transport", "reason"],
      registers,
    });
    this.authFailures = new Counter({
      name: "herald_auth_failures_total",
      help: "Rejected connection tokens, by transport and error code.",
      labelNames: ["transport", "code"],
      registers,
    });
    this.subscriptions = new Gauge({
      name: "herald_subscriptions",
      help: "Client subscriptions on this node, across all channels.",
      registers,
    });
    this.publications = new Counter({
      name: "herald_publications_total",
      help: "Publications stored by the broker through this node.",
      registers,
    });
    this.publicationBytes = new Counter({
      name: "herald_publication_bytes_total",
      help: "Bytes of publication data (JSON text) stored through this node.",
      registers,
    });
    this.deliveries = new Counter({
      name: "herald_deliveries_total",
      help: "Publications handed to local subscribers, counted once per subscriber.",
      registers,
    });
    this.latency = new Histogram({
      name: "herald_delivery_latency_seconds",
      help: "Time from publish to the hub handing the publication to its subscribers, observed once per publication per node.",
      buckets: LATENCY_BUCKETS,
      registers,
    }).labels();
    this.drops = new Counter({
      name: "herald_drops_total",
      help: "Messages discarded instead of sent to a client, by transport and reason.",
      labelNames: ["transport", "reason"],
      registers,
    });
    this.slowConsumers = new Counter({
      name: "herald_slow_consumer_closes_total",
      help: "Connections closed because their outbound buffer passed the limit.",
      labelNames: ["transport"],
      registers,
    });
    this.rateLimited = new Counter({
      name: "herald_rate_limit_closes_total",
      help: "Connections closed for exceeding their command rate.",
      labelNames: ["transport"],
      registers,
    });
    this.brokerErrors = new Counter({
      name: "herald_broker_errors_total",
      help: "Failed broker operations, by operation.",
      labelNames: ["operation"],
      registers,
    });
    this.brokerReconnects = new Counter({
      name: "herald_broker_reconnects_total",
      help: "Times the broker engine reconnected and the hub caught its channels up.",
      registers,
    });
    this.brokerAvailable = new Gauge({
      name: "herald_broker_available",
      help: "1 while the broker is reachable, else 0.",
      registers,
    });

    this.stopListening = events.on((event) => this.record(event));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Renders every metric in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.stopListening();
  }

  private record(event: HeraldEvent): void {
    switch (event.type) {
      case "connection.opened":
        this.connections.inc({ transport: event.transport });
        this.connectionsOpened.inc({ transport: event.transport });
        return;
      case "connection.closed":
        this.connections.dec({ transport: event.transport });
        this.connectionsClosed.inc({ transport: event.transport, reason: event.reason });
        return;
      case "auth.failed":
        this.authFailures.inc({ transport: event.transport, code: event.code });
        return;
      case "subscription.added":
        if (!isInternalChannel(event.channel)) {
          this.subscriptions.inc();
        }
        return;
      case "subscription.removed":
        if (!isInternalChannel(event.channel)) {
          this.subscriptions.dec();
        }
        return;
      case "publication":
        if (isInternalChannel(event.publication.channel)) {
          return;
        }
        this.publications.inc();
        this.publicationBytes.inc(event.bytes);
        return;
      case "delivery":
        if (isInternalChannel(event.publication.channel)) {
          return;
        }
        this.deliveries.inc(event.subscribers);
        this.latency.observe(Math.max(event.latencyMs, 0) / 1000);
        return;
      case "drop":
        this.drops.inc({ transport: event.transport, reason: event.reason }, event.count);
        return;
      case "slow_consumer":
        this.slowConsumers.inc({ transport: event.transport });
        return;
      case "rate_limited":
        this.rateLimited.inc({ transport: event.transport });
        return;
      case "broker.error":
        this.brokerErrors.inc({ operation: event.operation });
        return;
      case "broker.reconnect":
        this.brokerReconnects.inc();
        return;
      case "broker.availability":
        this.brokerAvailable.set(event.available ? 1 : 0);
        return;
      case "drain.started":
      case "drain.finished":
        // The node state gauge reads the state at scrape time.
        return;
    }
  }
}
