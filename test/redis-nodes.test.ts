import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { startHeraldProcess } from "./support/herald-process.js";
import { collect, grpcClient } from "./support/grpc-client.js";
import { postJson, publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { tempDir } from "./support/processes.js";
import { startRedis, type RedisInstance } from "./support/redis.js";
import { openSse } from "./support/sse.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** What a test subscriber has received on one channel so far. */
interface Sink {
  offsets(): number[];
  close(): void;
}

/**
 * Ways for a test subscriber to receive a channel's events, keyed by
 * transport. Every fan-out check runs over each of them; SSE and
 * long-poll sinks go here once those transports exist.
 */
const SINKS: Record<string, (node: Node, channel: string) => Promise<Sink>> = {
  websocket: async (node, channel) => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel });
    assert.equal(reply.type, "reply");
    return { offsets: () => client.pubs(channel).map((message) => message.offset), close: () => client.close() };
  },
  sse: async (node, channel) => {
    const stream = await openSse(`${node.http}/sse?channel=${channel}`);
    assert.equal(stream.status, 200);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1, 5_000, "subscribed event");
    return { offsets: () => stream.recorder.messages().map((message) => message.offset), close: () => stream.close() };
  },
  grpc: async (node, channel) => {
    const client = grpcClient(node.server.grpc!.port);
    const stream = collect(client.subscribe([{ channel }]));
    await waitUntil(() => stream.events.some((event) => event.subscribed), 5_000, "subscribed event");
    return {
      offsets: () => stream.publications(channel).map((publication) => publication.offset),
      close: () => client.raw.close(),
    };
  },
};

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("nodes on redis", () => {
  const cleanups: Array<() => Promise<void> | void> = [];

  after(async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }
  });

  async function redisServer(): Promise<RedisInstance> {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    return redis;
  }

  async function node(redis: RedisInstance, nodeId: string, overrides: Record<string, unknown> = {}): Promise<Node> {
    const started = await startHerald({ broker: "redis", redis: { url: redis.url }, nodeId, ...overrides });
    cleanups.push(() => started.close());
    return started;
  }

  async function readyStatus(target: Node): Promise<number> {
    return (await fetch(`${target.http}/readyz`)).status;
  }

  test("fan-out reaches every node in order", async () => {
    const redis = await redisServer();
    const grpc = { grpc: { enabled: true, port: 0, host: "127.0.0.1" } };
    const nodes = [await node(redis, "fan-a", grpc), await node(redis, "fan-b", grpc), await node(redis, "fan-c", grpc)];
    const sinks: Array<{ name: string; sink: Sink }> = [];
    for (const target of nodes) {
      for (const [transport, open] of Object.entries(SINKS)) {
        sinks.push({ name: `${transport} on ${target.server.nodeId}`, sink: await open(target, "fanout") });
      }
    }
    for (let n = 1; n <= 30; n++) {
      await publish(nodes[0]!.http, "fanout", { n });
    }
    for (const { name, sink } of sinks) {
      await waitUntil(() => sink.offsets().length >= 30, 10_000, `30 events for ${name}`);
      assert.deepEqual(sink.offsets(), range(1, 30), name);
      sink.close();
    }
  });

  test("batch on redis keeps channel order", async () => {
    const redis = await redisServer();
    const first = await node(redis, "batch-a");
    const second = await node(redis, "batch-b");
    const client = await TestClient.open(second.ws);
    for (const channel of ["batch-x", "batch-y"]) {
      assert.equal((await client.request({ type: "subscribe", channel })).type, "reply");
    }
    const channelOf = (n: number) => (n % 3 === 0 ? "batch-y" : "batch-x");
    // Every 50th item repeats the previous item's channel and key: the broker must see the first one stored.
    const items = range(1, 200).map((n) => {
      const repeats = n % 50 === 0;
      return { channel: channelOf(repeats ? n - 1 : n), data: { n }, idempotencyKey: `key-${repeats ? n - 1 : n}` };
    });
    const { status, body } = await postJson(first.http, "/api/publish_batch", { items });
    assert.equal(status, 200);
    const results = body.results as Array<{ channel: string; offset: number }>;
    assert.equal(results.length, 200);
    for (const channel of ["batch-x", "batch-y"]) {
      const mine = results.filter((result) => result.channel === channel);
      const stored = items.filter((item) => item.channel === channel && item.idempotencyKey === `key-${item.data.n}`);
      // Offsets rise in item order; a repeated key gets the offset of its first item.
      const distinct = [...new Set(mine.map((result) => result.offset))];
      assert.deepEqual(distinct, range(1, stored.length), channel);
      await waitUntil(() => client.pubs(channel).length >= stored.length, 10_000, `${channel} on the other node`);
      assert.deepEqual(
        client.pubs(channel).map((message) => (message.data as { n: number }).n),
        stored.map((item) => item.data.n),
        channel,
      );
    }
    for (const [i, item] of items.entries()) {
      if (item.idempotencyKey !== `key-${item.data.n}`) {
        assert.equal(results[i]!.offset, results[i - 1]!.offset, `item ${i} repeats the key of item ${i - 1}`);
      }
    }
    client.close();

    await redis.stop();
    await waitUntil(async () => (await readyStatus(first)) === 503, 10_000, "node not ready without redis");
    const failed = await postJson(first.http, "/api/publish_batch", { items: items.slice(0, 3) });
    assert.equal(failed.status, 503);
    assert.deepEqual(
      failed.body.results.map((result: any) => [result.channel, result.error?.code]),
      items.slice(0, 3).map((item) => [item.channel, "broker_unavailable"]),
    );
  });

  test("grpc publish on one node streams on another", async () => {
    const redis = await redisServer();
    const grpc = { grpc: { enabled: true, port: 0, host: "127.0.0.1" } };
    const first = await node(redis, "grpc-a", grpc);
    const second = await node(redis, "grpc-b", grpc);
    const publisher = grpcClient(first.server.grpc!.port);
    const subscriber = grpcClient(second.server.grpc!.port);
    const stream = collect(subscriber.subscribe([{ channel: "grpc-cross" }]));
    await waitUntil(() => stream.events.some((event) => event.subscribed), 5_000, "subscribed event");

    const offsets: number[] = [];
    for (let n = 0; n < 25; n++) {
      offsets.push((await publisher.publish("grpc-cross", { n })).offset);
    }
    await waitUntil(() => stream.publications("grpc-cross").length >= 25, 10_000, "25 events on node B");
    const received = stream.publications("grpc-cross");
    assert.deepEqual(received.map((publication) => publication.offset), offsets);
    assert.deepEqual(
      received.map((publication) => JSON.parse(publication.data.toString()).n),
      range(0, 24),
    );
    publisher.raw.close();
    subscriber.raw.close();
  });

  test("api info lists live nodes and sets the affinity cookie", async () => {
    const redis = await redisServer();
    const first = await node(redis, "info-a");
    await node(redis, "info-b");
    const response = await fetch(`${first.http}/api/info`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("set-cookie") ?? "", /^herald_node=info-a; Path=\//);
    const body = (await response.json()) as { node: string; complete: boolean; nodes: Array<{ id: string; address: string; connections: number; started: number }> };
    assert.equal(body.node, "info-a");
    assert.equal(body.complete, true);
    assert.deepEqual(body.nodes.map((entry) => entry.id), ["info-a", "info-b"]);
    assert.equal(body.nodes[0]!.address, `127.0.0.1:${first.port}`);
    assert.ok(body.nodes.every((entry) => entry.started > 0 && entry.connections >= 0));
  });

  test("killed subscriber connection loses no event", async () => {
    const redis = await redisServer();
    const publisher = await node(redis, "kill-a");
    const receiver = await node(redis, "kill-b");
    const client = await TestClient.open(receiver.ws);
    await client.request({ type: "subscribe", channel: "kill" });
    await publish(publisher.http, "kill", { n: 0 });
    await client.waitForPubs("kill", 1);

    const killed = redis.cli("CLIENT", "KILL", "TYPE", "pubsub");
    assert.ok(Number(killed) >= 1, `CLIENT KILL killed ${killed.trim()} connections`);
    for (let n = 1; n <= 5; n++) {
      await publish(publisher.http, "kill", { n });
    }

    const pubs = await client.waitForPubs("kill", 6);
    assert.deepEqual(pubs.map((message) => message.offset), range(1, 6));
    assert.deepEqual(pubs.map((message) => message.data.n), range(0, 5));
    assert.equal(client.messages.filter((message) => message.type === "gap").length, 0);
    await waitUntil(() => redis.cli("CLIENT", "LIST", "TYPE", "pubsub").includes("name=herald:kill-b:subscriber"), 5_000, "resubscribed");
    client.close();
  });

  test("unreachable redis turns nodes unready, then catches up", async () => {
    const redis = await redisServer();
    const publisher = await node(redis, "down-a");
    const receiver = await node(redis, "down-b");
    const client = await TestClient.open(receiver.ws);
    await client.request({ type: "subscribe", channel: "outage" });
    const first = await publish(publisher.http, "outage", { n: 1 });
    await publish(publisher.http, "outage", { n: 2 });
    await client.waitForPubs("outage", 2);

    // SHUTDOWN SAVE writes the data to disk, so the restart below keeps it.
    try {
      redis.cli("SHUTDOWN", "SAVE");
    } catch {
      // redis-cli reports the connection that the shutdown closed.
    }
    await waitUntil(async () => (await readyStatus(publisher)) === 503 && (await readyStatus(receiver)) === 503, 10_000, "readyz 503");
    const info = (await (await fetch(`${receiver.http}/api/info`)).json()) as any;
    assert.equal(info.complete, false);
    assert.deepEqual(info.nodes.map((entry: any) => entry.id), ["down-b"]);
    const refused = await postJson(publisher.http, "/api/publish", { channel: "outage", data: { n: 0 } });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, "broker_unavailable");
    const ping = await client.request({ type: "ping" });
    assert.equal(ping.type, "reply");

    await redis.restart();
    await waitUntil(async () => (await readyStatus(publisher)) === 200 && (await readyStatus(receiver)) === 200, 15_000, "readyz 200");
    const third = await publish(publisher.http, "outage", { n: 3 });
    await publish(publisher.http, "outage", { n: 4 });
    assert.equal(third.epoch, first.epoch);
    const pubs = await client.waitForPubs("outage", 4);
    assert.deepEqual(pubs.map((message) => message.offset), range(1, 4));
    assert.deepEqual(pubs.map((message) => message.data.n), range(1, 4));
    assert.equal(client.messages.filter((message) => message.type === "gap").length, 0);
    client.close();
  });

  test("redis restarted empty sends a gap with the new epoch", async () => {
    const redis = await redisServer();
    const publisher = await node(redis, "empty-a");
    const receiver = await node(redis, "empty-b");
    const client = await TestClient.open(receiver.ws);
    await client.request({ type: "subscribe", channel: "reset" });
    const before = await publish(publisher.http, "reset", { n: 1 });
    await publish(publisher.http, "reset", { n: 2 });
    await client.waitForPubs("reset", 2);

    await redis.restart();
    await waitUntil(async () => (await readyStatus(publisher)) === 200 && (await readyStatus(receiver)) === 200, 15_000, "readyz 200");
    let fresh: { epoch: string; offset: number } | undefined;
    await waitUntil(
      async () => {
        fresh = await publish(publisher.http, "reset", { n: 3 }).catch(() => undefined);
        return fresh !== undefined;
      },
      10_000,
      "a publish after the restart",
    );
    assert.notEqual(fresh!.epoch, before.epoch);
    assert.equal(fresh!.offset, 1);

    const gap = await client.waitFor((message) => message.type === "gap");
    assert.deepEqual(gap, { type: "gap", channel: "reset", epoch: fresh!.epoch, offset: 0 });
    const pubs = await client.waitForPubs("reset", 3);
    assert.deepEqual(pubs.map((message) => message.offset), [1, 2, 1]);
    assert.ok(client.messages.indexOf(gap) < client.messages.indexOf(pubs[2]));
    client.close();
  });

  test("history lost under live subscribers sends one gap", async () => {
    const redis = await redisServer();
    const publisher = await node(redis, "flush-a");
    const receiver = await node(redis, "flush-b");
    const client = await TestClient.open(receiver.ws);
    await client.request({ type: "subscribe", channel: "flushed" });
    const before = await publish(publisher.http, "flushed", { n: 1 });
    await client.waitForPubs("flushed", 1);

    // The subscriber connection stays up, so the new epoch first shows in a live event.
    redis.cli("FLUSHALL");
    const results = await Promise.all([2, 3, 4].map((n) => publish(publisher.http, "flushed", { n })));
    const epoch = results[0]!.epoch;
    assert.notEqual(epoch, before.epoch);
    assert.ok(results.every((result) => result.epoch === epoch));

    const pubs = await client.waitForPubs("flushed", 4);
    assert.deepEqual(pubs.map((message) => message.offset), [1, 1, 2, 3]);
    const gaps = client.messages.filter((message) => message.type === "gap");
    assert.deepEqual(gaps, [{ type: "gap", channel: "flushed", epoch, offset: 0 }]);
    assert.ok(client.messages.indexOf(gaps[0]) < client.messages.indexOf(pubs[1]));
    client.close();
  });

  test("session resumes on another node after a kill", async () => {
    const redis = await redisServer();
    const doomed = await startHeraldProcess({
      nodeId: "session-a",
      args: ["--broker", "redis", "--redis-url", redis.url, "--set", "sessionSaveIntervalMs=100", "--set", "websocket.pingIntervalMs=100"],
    });
    cleanups.push(() => doomed.stop("SIGKILL").then(() => undefined));
    const survivor = await node(redis, "session-b");

    const first = await TestClient.open(doomed.ws);
    const connected = await first.request({ type: "connect" });
    assert.equal(connected.result.node, "session-a");
    const session: string = connected.result.session;
    await first.request({ type: "subscribe", channel: "resume" });
    for (let n = 1; n <= 3; n++) {
      await publish(survivor.http, "resume", { n });
    }
    await first.waitForPubs("resume", 3);
    // The pong to this ping confirms offset 3; the wait is longer than
    // sessionSaveIntervalMs, so the periodic save has stored it.
    await once(first.socket, "ping");
    await new Promise((resolve) => setTimeout(resolve, 400));
    await doomed.stop("SIGKILL");
    await first.closed;

    await publish(survivor.http, "resume", { n: 4 });
    await publish(survivor.http, "resume", { n: 5 });
    const second = await TestClient.open(survivor.ws);
    const resumed = await second.request({ type: "connect", session });
    assert.equal(resumed.result.session, session);
    assert.equal(resumed.result.node, "session-b");
    assert.equal(resumed.result.restored.length, 1);
    assert.equal(resumed.result.restored[0].channel, "resume");
    assert.equal(resumed.result.restored[0].recovered, true);
    await publish(survivor.http, "resume", { n: 6 });
    const pubs = await second.waitForPubs("resume", 3);
    assert.deepEqual(pubs.map((message) => message.offset), [4, 5, 6]);
    second.close();
  });

  test("presence joins and leaves cross nodes", async () => {
    const redis = await redisServer();
    const settings = { namespaces: { room: { presence: true } }, presence: { ttlMs: 1_000, refreshMs: 200 } };
    const first = await node(redis, "room-a", settings);
    const second = await node(redis, "room-b", settings);
    const dir = tempDir("herald-presence-");
    cleanups.push(() => dir.cleanup());
    const configPath = join(dir.path, "herald.json");
    writeFileSync(configPath, JSON.stringify(settings));
    const doomed = await startHeraldProcess({
      nodeId: "room-c",
      args: ["--broker", "redis", "--redis-url", redis.url, "--config", configPath],
    });
    cleanups.push(() => doomed.stop("SIGKILL").then(() => undefined));

    const enter = async (target: { ws: string }) => {
      const client = await TestClient.open(target.ws);
      const connected = await client.request({ type: "connect" });
      await client.request({ type: "subscribe", channel: "room:1" });
      return { client, id: connected.result.client as string };
    };
    const watcher = await enter(first);
    const joined = (id: string) => watcher.client.waitFor((message) => message.type === "join" && message.client === id);
    const left = (id: string) => watcher.client.waitFor((message) => message.type === "leave" && message.client === id, 5_000);

    assert.deepEqual(await joined(watcher.id), { type: "join", channel: "room:1", client: watcher.id, user: "" });
    const peer = await enter(second);
    await joined(peer.id);
    const lost = await enter(doomed);
    await joined(lost.id);

    const listed = await watcher.client.request({ type: "presence", channel: "room:1" });
    assert.deepEqual(listed.result.clients.map((entry: { client: string }) => entry.client).sort(), [watcher.id, peer.id, lost.id].sort());

    peer.client.close();
    assert.deepEqual(await left(peer.id), { type: "leave", channel: "room:1", client: peer.id, user: "" });

    // A killed node cannot remove its entries; they expire after presence.ttlMs.
    await doomed.stop("SIGKILL");
    await left(lost.id);
    const after = await watcher.client.request({ type: "presence", channel: "room:1" });
    assert.deepEqual(after.result.clients.map((entry: { client: string }) => entry.client), [watcher.id]);
    watcher.client.close();
  });
});
