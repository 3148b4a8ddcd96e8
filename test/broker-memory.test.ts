import { MemoryBroker } from "../src/broker/memory-broker.js";
import { brokerConformance } from "./support/broker-conformance.js";

brokerConformance("memory", async () => ({
  create: () => new MemoryBroker(),
  shared: false,
  stop: async () => undefined,
}));
