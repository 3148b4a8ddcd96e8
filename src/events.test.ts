import assert from "node:assert/strict";
import { test } from "node:test";
import type { Broker } from "./broker/broker.js";
import { MemoryBroker } from "./broker/memory-broker.js";
import { Namespaces } from "./channel.js";
import { loadConfig } from "./config.js";
import type { EncodedPublication } from "./encoded.js";
import { closeReason, HeraldEvents, isInternalChannel, type HeraldEvent } from "./events.js";
import { Hub, type Subscriber } from "./hub.js";

const config = loadConfig({ env: {} });

const quiet: Subscriber = {
  deliver(_event: EncodedPublication) {},
  gap() {},
  overflow() {},
};

async function hubWithEvents(broker: Broker = new MemoryBroker()) {
  const events = new HeraldEvents();
  const seen: HeraldEvent[] = [];
  events.on((event) => seen.push(event));
  const hub = new Hub(broker, new Namespaces(config, false), 0, events);
  await hub.start();
  return { hub, seen };
}

test("emitter survives a throwing listener", () => {
  const failures: unknown[] = [];
  const events = new HeraldEvents((error) => failures.push(error));
  const seen: string[] = [];
  events.on(() => {
    throw new Error("listener bug");
  });
  const off = events.on((event) => seen.push(event.type));
  events.emit({ type: "broker.reconnect" });
  off();
  events.emit({ type: "broker.reconnect" });
  assert.deepEqual(seen, ["broker.reconnect"]);
  assert.equal(failures.length, 2);
});

test("hub emits one delivery per publication", async () => {
  const { hub, seen } = await hubWithEvents();
  const first = await hub.subscribe(quiet, "events:a");
  first.subscription.activate();
  const second = await hub.subscribe(quiet, "events:a");
  second.subscription.activate();
  await hub.publish("events:a", '{"n":1}');

  const types = seen.map((event) => event.type);
  assert.deepEqual(types, ["broker.availability", "subscription.added", "subscription.added", "delivery", "publication"]);
  const delivery = seen.find((event) => event.type === "delivery");
  assert.ok(delivery?.type === "delivery");
  assert.equal(delivery.subscribers, 2);
  assert.equal(delivery.publication.offset, 1);
  assert.ok(delivery.latencyMs >= 0);
  const publication = seen.find((event) => event.type === "publication");
  assert.ok(publication?.type === "publication");
  assert.equal(publication.bytes, 7);

  hub.unsubscribe(first.subscription);
  hub.unsubscribe(first.subscription);
  assert.equal(seen.filter((event) => event.type === "subscription.removed").length, 1);
});

test("hub reports broker failures", async () => {
  const broker = new MemoryBroker();
  broker.publish = async () => {
    throw new Error("disk full");
  };
  const { hub, seen } = await hubWithEvents(broker);
  await assert.rejects(hub.publish("events:b", "1"), { code: "broker_unavailable" });
  const failure = seen.find((event) => event.type === "broker.error");
  assert.ok(failure?.type === "broker.error");
  assert.equal(failure.operation, "publish");
  assert.equal((failure.error as Error).message, "disk full");
  assert.equal(seen.some((event) => event.type === "publication"), false);
});

test("internal publish skips channel validation", async () => {
  const { hub, seen } = await hubWithEvents();
  await assert.rejects(hub.publish("$admin:stats", "1"), { code: "invalid_channel" });
  const publication = await hub.publishInternal("$admin:stats", "1");
  assert.equal(publication.offset, 1);
  assert.equal(isInternalChannel("$admin:stats"), true);
  assert.equal(isInternalChannel("admin:stats"), false);
  assert.equal(seen.filter((event) => event.type === "publication").length, 1);
});

test("close codes map to fixed labels", () => {
  assert.equal(closeReason(1000), "normal");
  assert.equal(closeReason(4008), "slow_consumer");
  assert.equal(closeReason(4029), "rate_limited");
  assert.equal(closeReason(4321), "other");
  assert.equal(closeReason(undefined), "closed");
});
