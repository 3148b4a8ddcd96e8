import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { BrokerListener, Publication, PublishOptions } from "./broker.js";
import { MemoryBroker } from "./memory-broker.js";

const OPTIONS: PublishOptions = { historySize: 3, historyTtlMs: 60_000 };

/** Returns a listener that records what the broker hands to the node. */
function recorder(): BrokerListener & { publications: Publication[]; available: boolean[] } {
  const publications: Publication[] = [];
  const available: boolean[] = [];
  return {
    publications,
    available,
    onPublication: (publication) => publications.push(publication),
    onResync: () => undefined,
    onAvailability: (value) => available.push(value),
  };
}

async function started(): Promise<{ broker: MemoryBroker; listener: ReturnType<typeof recorder> }> {
  const broker = new MemoryBroker();
  const listener = recorder();
  await broker.start(listener);
  return { broker, listener };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("MemoryBroker", () => {
  test("start reports the broker available", async () => {
    const { broker, listener } = await started();
    assert.deepEqual(listener.available, [true]);
    assert.equal(broker.available(), true);
    await broker.close();
  });

  test("offsets start at 1 and share one epoch", async () => {
    const { broker } = await started();
    const first = await broker.publish("c", '{"n":1}', OPTIONS);
    const second = await broker.publish("c", '{"n":2}', OPTIONS);
    const other = await broker.publish("d", "1", OPTIONS);
    assert.equal(first.offset, 1);
    assert.equal(second.offset, 2);
    assert.equal(second.epoch, first.epoch);
    assert.equal(second.data, '{"n":2}');
    assert.equal(other.offset, 1, "each channel counts on its own");
    await broker.close();
  });

  test("history keeps the newest events up to its size", async () => {
    const { broker } = await started();
    for (let n = 1; n <= 5; n++) {
      await broker.publish("c", String(n), OPTIONS);
    }
    const all = await broker.history("c", { since: 0, limit: 100 });
    assert.equal(all.top, 5);
    assert.equal(all.earliest, 3);
    assert.deepEqual(
      all.publications.map((publication) => publication.offset),
      [3, 4, 5],
    );
    const after = await broker.history("c", { since: 3, limit: 1 });
    assert.deepEqual(
      after.publications.map((publication) => publication.data),
      ["4"],
    );
    const position = await broker.history("c", { since: 0, limit: 0 });
    assert.deepEqual(position.publications, []);
    assert.equal(position.top, 5);
    await broker.close();
  });

  test("history of an unknown channel is empty with a stable epoch", async () => {
    const { broker } = await started();
    const first = await broker.history("nothing", { since: 0, limit: 10 });
    assert.equal(first.top, 0);
    assert.equal(first.earliest, 1);
    const second = await broker.history("nothing", { since: 0, limit: 10 });
    assert.equal(second.epoch, first.epoch);
    const published = await broker.publish("nothing", "1", OPTIONS);
    assert.equal(published.epoch, first.epoch);
    await broker.close();
  });

  test("only subscribed channels reach the listener", async () => {
    const { broker, listener } = await started();
    await broker.publish("c", "1", OPTIONS);
    await broker.subscribe("c");
    await broker.publish("c", "2", OPTIONS);
    await broker.unsubscribe("c");
    await broker.publish("c", "3", OPTIONS);
    assert.deepEqual(
      listener.publications.map((publication) => publication.offset),
      [2],
    );
    await broker.close();
  });

  test("idempotency key returns the first publication", async () => {
    const { broker } = await started();
    const keyed = { ...OPTIONS, idempotencyKey: "k", idempotencyWindowMs: 60_000 };
    const first = await broker.publish("c", "1", keyed);
    const retry = await broker.publish("c", "1", keyed);
    assert.deepEqual(retry, first);
    const otherChannel = await broker.publish("d", "1", keyed);
    assert.equal(otherChannel.channel, "d", "keys are per channel");
    const history = await broker.history("c", { since: 0, limit: 10 });
    assert.equal(history.top, 1);
    await broker.close();
  });

  test("expired channel gets a new epoch", async () => {
    const { broker } = await started();
    const short = { historySize: 3, historyTtlMs: 20 };
    const first = await broker.publish("c", "1", short);
    await sleep(40);
    const second = await broker.publish("c", "2", short);
    assert.notEqual(second.epoch, first.epoch);
    assert.equal(second.offset, 1);
    await broker.close();
  });

  test("expired subscribed channel keeps its epoch and drops events", async () => {
    const { broker } = await started();
    const short = { historySize: 3, historyTtlMs: 20 };
    await broker.subscribe("c");
    const first = await broker.publish("c", "1", short);
    await sleep(40);
    const history = await broker.history("c", { since: 0, limit: 10 });
    assert.equal(history.epoch, first.epoch);
    assert.equal(history.top, 1);
    assert.equal(history.earliest, 2);
    assert.deepEqual(history.publications, []);
    const second = await broker.publish("c", "2", short);
    assert.equal(second.epoch, first.epoch);
    assert.equal(second.offset, 2);
    await broker.close();
  });

  test("history outlives its last subscriber by the TTL", async () => {
    const { broker } = await started();
    const short = { historySize: 3, historyTtlMs: 60 };
    await broker.subscribe("c");
    const first = await broker.publish("c", "1", short);
    await sleep(80);
    // Expired while subscribed: the record stays until the subscriber leaves, then for one more TTL.
    await broker.unsubscribe("c");
    const kept = await broker.history("c", { since: 0, limit: 10 });
    assert.equal(kept.epoch, first.epoch);
    await sleep(80);
    const renewed = await broker.history("c", { since: 0, limit: 10 });
    assert.notEqual(renewed.epoch, first.epoch);
    await broker.close();
  });

  test("sessions are stored until they expire", async () => {
    const { broker } = await started();
    await broker.saveSession("s1", '{"a":1}', 30);
    assert.equal(await broker.loadSession("s1"), '{"a":1}');
    assert.equal(await broker.loadSession("s2"), undefined);
    await sleep(50);
    assert.equal(await broker.loadSession("s1"), undefined);
    await broker.saveSession("s3", "{}", 60_000);
    await broker.deleteSession("s3");
    assert.equal(await broker.loadSession("s3"), undefined);
    await broker.close();
  });

  test("presence entries are listed until removed or expired", async () => {
    const { broker } = await started();
    await broker.presenceAdd("c", { clientId: "a", user: "u1", node: "n" }, 60_000);
    await broker.presenceAdd("c", { clientId: "b", user: "u2", node: "n" }, 20);
    assert.deepEqual(
      (await broker.presenceList("c")).map((entry) => entry.clientId).sort(),
      ["a", "b"],
    );
    await sleep(40);
    assert.deepEqual(
      (await broker.presenceList("c")).map((entry) => entry.clientId),
      ["a"],
    );
    await broker.presenceRemove("c", "a");
    assert.deepEqual(await broker.presenceList("c"), []);
    assert.deepEqual(await broker.presenceList("none"), []);
    await broker.close();
  });
});

describe("MemoryBroker records created by reads", () => {
  async function capped(cap: number): Promise<MemoryBroker> {
    const broker = new MemoryBroker({ readOnlyCap: cap });
    await broker.start(recorder());
    return broker;
  }

  test("reads of fresh channels keep at most the cap of records", async () => {
    const broker = await capped(10);
    for (let n = 0; n < 100; n++) {
      await broker.history(`fresh-${n}`, { since: 0, limit: 0 });
    }
    assert.equal(broker.channelRecords, 10);
    await broker.close();
  });

  test("published and subscribed records survive the cap", async () => {
    const broker = await capped(3);
    const published = await broker.publish("published", "1", OPTIONS);
    await broker.subscribe("waiting");
    const waiting = await broker.history("waiting", { since: 0, limit: 0 });
    for (let n = 0; n < 20; n++) {
      await broker.history(`fresh-${n}`, { since: 0, limit: 0 });
    }
    assert.equal(broker.channelRecords, 5, "two kept records and the cap of read-only ones");
    assert.equal((await broker.history("published", { since: 0, limit: 10 })).epoch, published.epoch);
    assert.equal((await broker.history("waiting", { since: 0, limit: 0 })).epoch, waiting.epoch);
    const first = await broker.publish("waiting", "1", OPTIONS);
    assert.equal(first.epoch, waiting.epoch);
    assert.equal(first.offset, 1);
    await broker.close();
  });

  test("the least recently read record goes first", async () => {
    const broker = await capped(2);
    const a = await broker.history("a", { since: 0, limit: 0 });
    const b = await broker.history("b", { since: 0, limit: 0 });
    await broker.history("a", { since: 0, limit: 0 });
    await broker.history("c", { since: 0, limit: 0 });
    assert.equal((await broker.history("a", { since: 0, limit: 0 })).epoch, a.epoch);
    assert.notEqual((await broker.history("b", { since: 0, limit: 0 })).epoch, b.epoch, "b was evicted");
    await broker.close();
  });

  test("an unsubscribed channel without events counts against the cap again", async () => {
    const broker = await capped(1);
    await broker.subscribe("left");
    await broker.history("left", { since: 0, limit: 0 });
    await broker.unsubscribe("left");
    await broker.history("other", { since: 0, limit: 0 });
    assert.equal(broker.channelRecords, 1);
    await broker.close();
  });
});
