import { startRedis } from "./support/redis.js";
import { brokerConformance } from "./support/broker-conformance.js";
import { redisBroker } from "./support/redis-broker.js";

brokerConformance("redis", async () => {
  const redis = await startRedis();
  return { create: () => redisBroker({ url: redis.url }), shared: true, stop: () => redis.stop() };
});
