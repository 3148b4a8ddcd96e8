import { startRedisCluster } from "./support/redis.js";
import { brokerConformance } from "./support/broker-conformance.js";
import { redisBroker } from "./support/redis-broker.js";

brokerConformance("redis cluster", async () => {
  const cluster = await startRedisCluster(3);
  return { create: () => redisBroker({ clusterNodes: cluster.nodes }), shared: true, stop: () => cluster.stop() };
});
