import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { Broker, BrokerListener, PresenceEvent, Publication, PublishOptions } from "../../src/broker/broker.js";
import { waitUntil } from "./ports.js";

/** A listener that records every callback, for assertions. */
export class RecordingListener implements BrokerListener {
  readonly publications: Publication[] = [];
  readonly presence: PresenceEvent[] = [];
  readonly availability: boolean[] = [];
  resyncs = 0;

  onPublication(publication: Publication): void {
    this.publications.push(publication);
  }

  onPresence(event: PresenceEvent): void {
    this.presence.push(event);
  }

  onResync(): void {
    this.resyncs++;
  }

  onAvailability(available: boolean): void {
    this.availability.push(available);
  }

  on(channel: string): Publication[] {
    return this.publications.filter((publication) => publication.channel === channel);
  }
}

const OPTIONS: PublishOptions = { historySize: 100, historyTtlMs: 60_000, idempotencyWindowMs: 60_000 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The behaviour every broker engine shares. `create` returns a started
 * engine's factory: each call makes a new engine instance (a new node) on
 * the same backing store, so the suite can check fan-out between nodes.
 */
export function brokerConformance(name: string, setup: () => Promise<{ create(): Broker; shared: boolean; stop(): Promise<void> }>): void {
  describe(`broker conformance: ${name}`, () => {
    let env: Awaited<ReturnType<typeof setup>>;
    let broker: Broker;
    const listener = new RecordingListener();
    const started: Broker[] = [];

    /** A channel name no other test uses. */
    const fresh = (prefix = "c") => `${prefix}-${randomUUID().slice(0, 8)}`;

    before(async () => {
      env = await setup();
      broker = env.create();
      started.push(broker);
      await broker.start(listener);
    });

    after(async () => {
      await Promise.all(started.map((engine) => engine.close()));
      await env.stop();
    });

    test("start reports the engine available", () => {
      assert.equal(broker.available(), true);
      assert.equal(listener.availability.at(-1), true);
    });

    test("publish assigns offsets from 1 in one epoch", async () => {
      const channel = fresh();
      const first = await broker.publish(channel, '{"n":1}', OPTIONS);
      const second = await broker.publish(channel, '{"n":2}', OPTIONS);
      assert.equal(first.offset, 1);
      assert.equal(second.offset, 2);
      assert.equal(first.epoch, second.epoch);
      assert.match(first.epoch, /^[0-9a-z]{6}$/);
      assert.equal(first.channel, channel);
      assert.equal(first.data, '{"n":1}');
      assert.ok(Math.abs(first.time - Date.now()) < 5_000);
    });

    test("history of a new channel is empty and keeps its epoch", async () => {
      const channel = fresh();
      const empty = await broker.history(channel, { since: 0, limit: 10 });
      assert.equal(empty.top, 0);
      assert.equal(empty.earliest, 1);
      assert.deepEqual(empty.publications, []);
      const published = await broker.publish(channel, "1", OPTIONS);
      assert.equal(published.epoch, empty.epoch);
      assert.equal(published.offset, 1);
    });

    test("history honours since and limit", async () => {
      const channel = fresh();
      for (let n = 1; n <= 5; n++) {
        await broker.publish(channel, String(n), OPTIONS);
      }
      const all = await broker.history(channel, { since: 0, limit: 100 });
      assert.equal(all.top, 5);
      assert.equal(all.earliest, 1);
      assert.deepEqual(all.publications.map((p) => p.offset), [1, 2, 3, 4, 5]);
      assert.deepEqual(all.publications.map((p) => p.data), ["1", "2", "3", "4", "5"]);
      assert.ok(all.publications.every((p) => p.epoch === all.epoch && p.channel === channel && p.time > 0));

      const after2 = await broker.history(channel, { since: 2, limit: 2 });
      assert.deepEqual(after2.publications.map((p) => p.offset), [3, 4]);

      const position = await broker.history(channel, { since: 0, limit: 0 });
      assert.equal(position.top, 5);
      assert.deepEqual(position.publications, []);

      const beyond = await broker.history(channel, { since: 5, limit: 10 });
      assert.deepEqual(beyond.publications, []);
    });

    test("history is capped at the history size", async () => {
      const channel = fresh();
      for (let n = 1; n <= 5; n++) {
        await broker.publish(channel, String(n), { ...OPTIONS, historySize: 3 });
      }
      const history = await broker.history(channel, { since: 0, limit: 100 });
      assert.equal(history.top, 5);
      assert.equal(history.earliest, 3);
      assert.deepEqual(history.publications.map((p) => p.offset), [3, 4, 5]);
    });

    test("history size 0 keeps no events but counts offsets", async () => {
      const channel = fresh();
      await broker.publish(channel, "1", { ...OPTIONS, historySize: 0 });
      const second = await broker.publish(channel, "2", { ...OPTIONS, historySize: 0 });
      assert.equal(second.offset, 2);
      const history = await broker.history(channel, { since: 0, limit: 100 });
      assert.equal(history.top, 2);
      assert.equal(history.earliest, 3);
      assert.deepEqual(history.publications, []);
    });

    test("history expires after its TTL", async () => {
      const channel = fresh();
      const first = await broker.publish(channel, "1", { ...OPTIONS, historyTtlMs: 150 });
      await broker.publish(channel, "2", { ...OPTIONS, historyTtlMs: 150 });
      await sleep(400);
      const history = await broker.history(channel, { since: 0, limit: 100 });
      assert.deepEqual(history.publications, []);
      assert.equal(history.earliest, history.top + 1);
      if (history.epoch === first.epoch) {
        // The channel's position outlived its events: no false gap for a subscriber at the top.
        assert.equal(history.top, 2);
      } else {
        assert.equal(history.top, 0);
      }
    });

    test("idempotency key returns the first result", async () => {
      const channel = fresh();
      const key = randomUUID();
      const first = await broker.publish(channel, '"a"', { ...OPTIONS, idempotencyKey: key });
      const retry = await broker.publish(channel, '"a"', { ...OPTIONS, idempotencyKey: key });
      assert.equal(retry.offset, first.offset);
      assert.equal(retry.epoch, first.epoch);
      const other = await broker.publish(channel, '"b"', { ...OPTIONS, idempotencyKey: randomUUID() });
      assert.equal(other.offset, first.offset + 1);
      const elsewhere = await broker.publish(fresh(), '"a"', { ...OPTIONS, idempotencyKey: key });
      assert.equal(elsewhere.offset, 1);
      const history = await broker.history(channel, { since: 0, limit: 100 });
      assert.deepEqual(history.publications.map((p) => p.data), ['"a"', '"b"']);
    });

    test("idempotency key expires after its window", async () => {
      const channel = fresh();
      const key = randomUUID();
      const first = await broker.publish(channel, "1", { ...OPTIONS, idempotencyKey: key, idempotencyWindowMs: 100 });
      await sleep(250);
      const later = await broker.publish(channel, "1", { ...OPTIONS, idempotencyKey: key, idempotencyWindowMs: 100 });
      assert.equal(later.offset, first.offset + 1);
    });

    test("subscribe delivers publications in order", async () => {
      const channel = fresh();
      await broker.subscribe(channel);
      for (let n = 1; n <= 20; n++) {
        await broker.publish(channel, String(n), OPTIONS);
      }
      await waitUntil(() => listener.on(channel).length === 20, 5_000, "20 publications");
      const received = listener.on(channel);
      assert.deepEqual(received.map((p) => p.offset), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.equal(received[0]!.data, "1");
      assert.ok(received.every((p) => p.epoch === received[0]!.epoch && p.time > 0));
    });

    test("unsubscribe stops delivery", async () => {
      const channel = fresh();
      const other = fresh();
      await broker.subscribe(channel);
      await broker.subscribe(other);
      await broker.publish(channel, "1", OPTIONS);
      await waitUntil(() => listener.on(channel).length === 1, 5_000, "first publication");
      await broker.unsubscribe(channel);
      await broker.publish(channel, "2", OPTIONS);
      await broker.publish(other, "marker", OPTIONS);
      await waitUntil(() => listener.on(other).length === 1, 5_000, "marker publication");
      assert.equal(listener.on(channel).length, 1);
    });

    test("publications reach every node", { skip: !name.includes("redis") && "one node only" }, async () => {
      const second = env.create();
      started.push(second);
      const secondListener = new RecordingListener();
      await second.start(secondListener);
      const channel = fresh();
      await second.subscribe(channel);
      await broker.subscribe(channel);
      for (let n = 1; n <= 10; n++) {
        await broker.publish(channel, String(n), OPTIONS);
      }
      await waitUntil(() => secondListener.on(channel).length === 10, 5_000, "10 publications on the second node");
      assert.deepEqual(secondListener.on(channel).map((p) => p.offset), Array.from({ length: 10 }, (_, i) => i + 1));
      const fromSecond = await second.history(channel, { since: 8, limit: 10 });
      assert.deepEqual(fromSecond.publications.map((p) => p.data), ["9", "10"]);
    });

    test("sessions are stored until they expire", async () => {
      const id = randomUUID();
      await broker.saveSession(id, '{"user":"u"}', 60_000);
      assert.equal(await broker.loadSession(id), '{"user":"u"}');
      await broker.saveSession(id, '{"user":"v"}', 60_000);
      assert.equal(await broker.loadSession(id), '{"user":"v"}');
      await broker.deleteSession(id);
      assert.equal(await broker.loadSession(id), undefined);

      const short = randomUUID();
      await broker.saveSession(short, "{}", 100);
      assert.equal(await broker.loadSession(short), "{}");
      await sleep(250);
      assert.equal(await broker.loadSession(short), undefined);
      assert.equal(await broker.loadSession(randomUUID()), undefined);
    });

    test("presence lists, removes and announces entries", async () => {
      const channel = fresh("presence");
      await broker.subscribe(channel);
      await broker.presenceAdd(channel, { clientId: "c1", user: "alice", node: "n1" }, 60_000);
      await broker.presenceAdd(channel, { clientId: "c2", user: "bob", node: "n1" }, 60_000);
      await broker.presenceAdd(channel, { clientId: "c1", user: "alice", node: "n1" }, 60_000);
      const listed = await broker.presenceList(channel);
      assert.deepEqual(listed.map((entry) => entry.clientId).sort(), ["c1", "c2"]);
      assert.deepEqual(listed.find((entry) => entry.clientId === "c2"), { clientId: "c2", user: "bob", node: "n1" });

      await broker.presenceRemove(channel, "c1");
      assert.deepEqual((await broker.presenceList(channel)).map((entry) => entry.clientId), ["c2"]);

      await waitUntil(() => listener.presence.filter((e) => e.channel === channel).length === 3, 5_000, "3 presence events");
      const events = listener.presence.filter((e) => e.channel === channel);
      assert.deepEqual(events.map((e) => `${e.type}:${e.entry.clientId}`), ["join:c1", "join:c2", "leave:c1"]);
      assert.equal(events[0]!.entry.user, "alice");
    });

    test("presence entries expire without a refresh", async () => {
      const channel = fresh("presence");
      await broker.presenceAdd(channel, { clientId: "gone", user: "u", node: "dead" }, 100);
      await broker.presenceAdd(channel, { clientId: "kept", user: "u", node: "live" }, 60_000);
      await sleep(250);
      const listed = await broker.presenceList(channel);
      assert.deepEqual(listed.map((entry) => entry.clientId), ["kept"]);
    });

    test("node registry lists live nodes only", async () => {
      const id = `node-${randomUUID().slice(0, 6)}`;
      await broker.registerNode({ id, address: "127.0.0.1:1", connections: 3, started: 1 }, 60_000);
      const short = `node-${randomUUID().slice(0, 6)}`;
      await broker.registerNode({ id: short, address: "127.0.0.1:2", connections: 0, started: 2 }, 100);
      let nodes = await broker.listNodes();
      assert.deepEqual(nodes.find((node) => node.id === id), { id, address: "127.0.0.1:1", connections: 3, started: 1 });
      assert.ok(nodes.some((node) => node.id === short));
      await sleep(250);
      nodes = await broker.listNodes();
      assert.ok(!nodes.some((node) => node.id === short));
      await broker.removeNode(id);
      nodes = await broker.listNodes();
      assert.ok(!nodes.some((node) => node.id === id));
    });
  });
}
