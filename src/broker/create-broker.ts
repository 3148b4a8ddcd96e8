import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Broker } from "./broker.js";
import { MemoryBroker } from "./memory-broker.js";
import { RedisBroker } from "./redis/redis-broker.js";

/** Creates the engine that `config.broker` names; the node id names its Redis connections. */
export function createBroker(config: Config, log: Logger, nodeId: string): Broker {
  if (config.broker === "redis") {
    return new RedisBroker(
      {
        url: config.redis.url,
        clusterNodes: config.redis.clusterNodes,
        keyPrefix: config.redis.keyPrefix,
        metaTtlMs: config.redis.metaTtlMs,
        unpublishedMetaTtlMs: config.redis.unpublishedMetaTtlMs,
        commandTimeoutMs: config.redis.commandTimeoutMs,
        connectionName: `herald:${nodeId}`,
      },
      log.child({ component: "redis" }),
    );
  }
  return new MemoryBroker();
}
