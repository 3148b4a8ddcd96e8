import { hostname } from "node:os";
import type { Broker, NodeInfo } from "./broker/broker.js";
import type { Config } from "./config.js";
import type { Logger } from "./log.js";

/**
 * Keeps this node listed in the broker's node registry with a heartbeat.
 * A node that dies stops refreshing, so it drops out of the list after
 * `nodeRegistry.ttlMs`.
 */
export class NodeRegistry {
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();
  private failures = 0;

  constructor(
    private readonly broker: Broker,
    private readonly config: Config,
    private readonly nodeId: string,
    private readonly port: () => number,
    private readonly connections: () => number,
    private readonly log: Logger,
  ) {}

  /** This node as the registry lists it now. */
  self(): NodeInfo {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? hostname() : this.config.host;
    return { id: this.nodeId, address: `${host}:${this.port()}`, connections: this.connections(), started: this.started };
  }

  async start(): Promise<void> {
    await this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat(), this.config.nodeRegistry.heartbeatMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.broker.removeNode(this.nodeId).catch(() => undefined);
  }

  /**
   * Lists the live nodes, this one first. While the broker is unreachable
   * it lists this node alone, with `complete` false.
   */
  async list(): Promise<{ nodes: NodeInfo[]; complete: boolean }> {
    const self = this.self();
    let listed: NodeInfo[];
    try {
      listed = await this.broker.listNodes();
    } catch (error) {
      this.log.warn({ err: error }, "node list failed");
      return { nodes: [self], complete: false };
    }
    const others = listed.filter((node) => node.id !== self.id).sort((a, b) => a.id.localeCompare(b.id));
    return { nodes: [self, ...others], complete: true };
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.broker.registerNode(this.self(), this.config.nodeRegistry.ttlMs);
      if (this.failures > 0) {
        this.log.info({ failures: this.failures }, "node heartbeat restored");
      }
      this.failures = 0;
    } catch (error) {
      // Logged once per outage; the broker's own availability drives /readyz.
      if (this.failures++ === 0) {
        this.log.warn({ err: error }, "node heartbeat failed");
      }
    }
  }
}
