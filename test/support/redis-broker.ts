import { RedisBroker, type RedisBrokerSettings } from "../../src/broker/redis/redis-broker.js";
import { createLogger } from "../../src/log.js";

/** Creates a Redis engine for tests; `settings` names the server or the cluster. */
export function redisBroker(settings: Partial<RedisBrokerSettings>): RedisBroker {
  return new RedisBroker(
    {
      url: "",
      clusterNodes: [],
      keyPrefix: "herald-test:",
      metaTtlMs: 86_400_000,
      commandTimeoutMs: 2_000,
      ...settings,
    },
    createLogger(process.env.HERALD_TEST_LOG ?? "silent"),
  );
}
