import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamPosition } from "./broker/broker.js";
import { MemoryBroker } from "./broker/memory-broker.js";
import { Namespaces } from "./channel.js";
import { loadConfig } from "./config.js";
import type { EncodedPublication } from "./encoded.js";
import { Hub, type Subscriber, type Subscription } from "./hub.js";

/** A subscriber that records what the hub hands it, in order. */
class Recorder implements Subscriber {
  readonly events: Array<{ offset: number; ws: string } | { gap: StreamPosition }> = [];
  overflowed = false;

  deliver(event: EncodedPublication): void {
    this.events.push({ offset: event.offset, ws: event.ws.toString() });
  }

  gap(_subscription: Subscription, position: StreamPosition): void {
    this.events.push({ gap: position });
  }

  overflow(): void {
    this.overflowed = true;
  }

  offsets(): number[] {
    return this.events.flatMap((event) => ("offset" in event ? [event.offset] : []));
  }
}

async function startHub(overrides: Record<string, unknown> = {}): Promise<{ hub: Hub; broker: MemoryBroker }> {
  const config = loadConfig({ env: {}, overrides });
  const broker = new MemoryBroker();
  const hub = new Hub(broker, new Namespaces(config, false), config.idempotencyWindowMs);
  await hub.start();
  return { hub, broker };
}

const OPTIONS = { historySize: 100, historyTtlMs: 60_000 };

describe("Hub", () => {
  test("encodes each event once for all subscribers", async () => {
    const { hub, broker } = await startHub();
    const delivered: EncodedPublication[] = [];
    const sharing: Subscriber = { deliver: (event) => delivered.push(event), gap: () => undefined, overflow: () => undefined };
    for (let i = 0; i < 3; i++) {
      const result = await hub.subscribe(sharing, "c");
      result.subscription.activate();
    }
    await hub.publish("c", '{"a":1}');
    assert.equal(delivered.length, 3);
    assert.equal(delivered[0], delivered[1]);
    assert.equal(delivered[0]!.ws, delivered[2]!.ws, "every subscriber gets the same bytes");
    assert.equal(delivered[0]!.ws.toString(), '{"type":"pub","channel":"c","offset":1,"data":{"a":1}}');
    assert.equal(delivered[0]!.json, '{"channel":"c","offset":1,"data":{"a":1}}');
    await broker.close();
  });

  test("one history read per channel and turn", async () => {
    const { hub, broker } = await startHub();
    for (let n = 1; n <= 30; n++) {
      await broker.publish("storm", JSON.stringify({ n }), OPTIONS);
    }
    const epoch = (await broker.history("storm", { since: 0, limit: 0 })).epoch;
    let reads = 0;
    const read = broker.history.bind(broker);
    broker.history = (channel, query) => {
      reads++;
      return read(channel, query);
    };
    const starts = [25, 3, 30, 17, 0];
    const results = await Promise.all([
      ...starts.map((offset) => hub.subscribe(new Recorder(), "storm", { epoch, offset })),
      hub.subscribe(new Recorder(), "storm"),
    ]);
    assert.equal(reads, 1, "one broker read for the whole turn");
    starts.forEach((offset, i) => {
      const result = results[i]!;
      assert.equal(result.recovered, true);
      assert.deepEqual(
        result.publications.map((event) => event.offset),
        Array.from({ length: 30 - offset }, (_, k) => offset + k + 1),
        `resumed after ${offset}`,
      );
    });
    assert.deepEqual(results[5]!.publications, [], "a subscribe without since gets no history");
    assert.equal(results[5]!.top, 30);
    // The same event is the same encoded object for every subscriber that recovers it.
    assert.equal(results[0]!.publications.at(-1), results[1]!.publications.at(-1));

    // A later turn reads again, so nothing published in between is missed.
    await broker.publish("storm", JSON.stringify({ n: 31 }), OPTIONS);
    const later = await hub.subscribe(new Recorder(), "storm", { epoch, offset: 29 });
    assert.equal(reads, 2);
    assert.deepEqual(
      later.publications.map((event) => event.offset),
      [30, 31],
    );
    await broker.close();
  });

  test("subscribe with since returns the missed events", async () => {
    const { hub, broker } = await startHub();
    const first = await hub.publish("c", "1");
    await hub.publish("c", "2");
    await hub.publish("c", "3");
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c", { epoch: first.epoch, offset: 1 });
    assert.equal(result.recovered, true);
    assert.equal(result.top, 3);
    assert.deepEqual(
      result.publications.map((event) => event.offset),
      [2, 3],
    );
    result.subscription.activate();
    await hub.publish("c", "4");
    assert.deepEqual(recorder.offsets(), [4]);
    await broker.close();
  });

  test("events during recovery are held until activate", async () => {
    const { hub, broker } = await startHub();
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c");
    await hub.publish("c", "1");
    await hub.publish("c", "2");
    assert.deepEqual(recorder.offsets(), [], "nothing is delivered before activate");
    result.subscription.activate();
    assert.deepEqual(recorder.offsets(), [1, 2]);
    await broker.close();
  });

  test("recovery buffer overflow ends the subscription", async () => {
    const { hub, broker } = await startHub();
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c");
    // 10,000 events are buffered while the subscriber has not gone live; one more overflows.
    for (let n = 1; n <= 10_001; n++) {
      await hub.publish("c", String(n));
    }
    assert.equal(recorder.overflowed, true);
    assert.equal(result.subscription.closed, true);
    result.subscription.activate();
    assert.deepEqual(recorder.offsets(), [], "an overflowed subscription delivers nothing");
    await broker.close();
  });

  test("hole in offsets is filled from history", async () => {
    const { hub, broker } = await startHub();
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c");
    result.subscription.activate();
    await hub.publish("c", "1");

    // Publications the node misses while its broker subscription is down.
    await broker.unsubscribe("c");
    await broker.publish("c", "2", OPTIONS);
    await broker.publish("c", "3", OPTIONS);
    await broker.subscribe("c");
    await broker.publish("c", "4", OPTIONS);

    await waitFor(() => recorder.offsets().length === 4);
    assert.deepEqual(recorder.offsets(), [1, 2, 3, 4]);
    assert.equal(recorder.events.some((event) => "gap" in event), false);
    await broker.close();
  });

  test("hole older than history becomes a gap", async () => {
    const { hub, broker } = await startHub({ defaults: { historySize: 2 } });
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c");
    result.subscription.activate();
    await hub.publish("c", "1");

    await broker.unsubscribe("c");
    const small = { historySize: 2, historyTtlMs: 60_000 };
    for (let n = 2; n <= 5; n++) {
      await broker.publish("c", String(n), small);
    }
    await broker.subscribe("c");
    const last = await broker.publish("c", "6", small);

    await waitFor(() => recorder.offsets().includes(6));
    assert.deepEqual(recorder.events[1], { gap: { epoch: last.epoch, offset: 4 } });
    assert.deepEqual(recorder.offsets(), [1, 5, 6]);
    await broker.close();
  });

  test("epoch change sends a gap notice", async () => {
    const { hub, broker } = await startHub();
    const recorder = new Recorder();
    const result = await hub.subscribe(recorder, "c");
    result.subscription.activate();
    await hub.publish("c", "1");
    // Dropping the engine's record is what a Redis restart without data does:
    // the next publish starts a new history with a new epoch at offset 1.
    (broker as unknown as { channels: Map<string, unknown> }).channels.delete("c");
    const fresh = await hub.publish("c", "9");
    await waitFor(() => recorder.events.length === 3);
    assert.notEqual(fresh.epoch, result.epoch);
    assert.deepEqual(recorder.events[1], { gap: { epoch: fresh.epoch, offset: 0 } });
    assert.deepEqual(recorder.offsets(), [1, 1]);
    await broker.close();
  });

  test("last unsubscribe releases the channel", async () => {
    const { hub, broker } = await startHub();
    const first = await hub.subscribe(new Recorder(), "c");
    const second = await hub.subscribe(new Recorder(), "c");
    assert.equal(hub.channelCount, 1);
    assert.equal(hub.subscriptionCount, 2);
    hub.unsubscribe(first.subscription);
    hub.unsubscribe(first.subscription);
    assert.equal(hub.subscriptionCount, 1);
    hub.unsubscribe(second.subscription);
    assert.equal(hub.channelCount, 0);
    await broker.close();
  });

  test("publish rejects an invalid channel", async () => {
    const { hub, broker } = await startHub();
    await assert.rejects(hub.publish("a b", "1"), { code: "invalid_channel" });
    await broker.close();
  });
});

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(check(), "condition not reached within 1 s");
}
