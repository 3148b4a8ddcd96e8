import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, describe, test } from "node:test";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { startRedisCluster } from "./support/redis.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("nodes on redis cluster", () => {
  const cleanups: Array<() => Promise<void>> = [];

  after(async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }
  });

  test("sharded fan-out survives killed subscriber connections", async () => {
    const cluster = await startRedisCluster(3);
    cleanups.push(() => cluster.stop());
    const nodes: Node[] = [];
    for (const id of ["shard-a", "shard-b", "shard-c"]) {
      const node = await startHerald({ broker: "redis", redis: { clusterNodes: cluster.nodes }, nodeId: id });
      cleanups.push(() => node.close());
      nodes.push(node);
    }
    // Channels whose slots spread over the masters.
    const channels = ["alpha", "beta", "gamma", "delta"];
    const clients: TestClient[] = [];
    for (const node of nodes.slice(1)) {
      const client = await TestClient.open(node.ws);
      for (const channel of channels) {
        await client.request({ type: "subscribe", channel });
      }
      clients.push(client);
    }
    for (const channel of channels) {
      await publish(nodes[0]!.http, channel, { n: 0 });
    }
    for (const client of clients) {
      for (const channel of channels) {
        await client.waitForPubs(channel, 1);
      }
    }

    let killed = 0;
    for (const address of cluster.nodes) {
      const port = address.split(":")[1]!;
      killed += Number(execFileSync("redis-cli", ["-p", port, "CLIENT", "KILL", "TYPE", "pubsub"], { encoding: "utf8" }));
    }
    assert.ok(killed >= 2, `killed ${killed} subscriber connections`);
    // All at once, so that they land while the subscribers reconnect.
    await Promise.all(channels.flatMap((channel) => range(1, 5).map((n) => publish(nodes[0]!.http, channel, { n }))));

    for (const client of clients) {
      for (const channel of channels) {
        const pubs = await client.waitForPubs(channel, 6, 15_000);
        assert.deepEqual(pubs.map((message) => message.offset), range(1, 6), channel);
      }
      assert.equal(client.messages.filter((message) => message.type === "gap").length, 0);
      client.close();
    }
    await waitUntil(async () => (await fetch(`${nodes[1]!.http}/readyz`)).status === 200, 10_000, "node ready again");
  });
});
