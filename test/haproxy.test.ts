import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { renderDeployConfig, startHaproxy } from "./support/deploy.js";
import { startHerald, TestClient } from "./support/herald.js";
import { freePort, waitUntil } from "./support/ports.js";
import { startRedis, type RedisInstance } from "./support/redis.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

describe("haproxy with the deploy config", () => {
  let redis: RedisInstance;
  const nodes: Node[] = [];
  let proxy: Awaited<ReturnType<typeof startHaproxy>>;
  let base: string;

  /** GET /api/info through HAProxy; returns the serving node and the affinity cookie it set. */
  async function info(cookie?: string): Promise<{ node: string; cookie: string }> {
    const response = await fetch(`${base}/api/info`, { headers: cookie === undefined ? {} : { Cookie: cookie } });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { node: string };
    return { node: body.node, cookie: (response.headers.get("set-cookie") ?? "").split(";")[0]! };
  }

  before(async () => {
    redis = await startRedis();
    for (const id of ["node-1", "node-2", "node-3"]) {
      nodes.push(await startHerald({ broker: "redis", redis: { url: redis.url }, nodeId: id }));
    }
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = renderDeployConfig("deploy/haproxy/haproxy.cfg", port, nodes.map((node) => node.port));
    proxy = await startHaproxy(config, port);
    // Every server must pass its /readyz check before round robin uses it.
    await waitUntil(async () => new Set(await Promise.all([1, 2, 3, 4, 5, 6].map(async () => (await info()).node))).size === 3, 15_000, "three healthy servers");
  });

  after(async () => {
    await proxy?.stop();
    for (const node of nodes) {
      await node.close();
    }
    await redis?.stop();
  });

  test("requests without the cookie are balanced", async () => {
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) {
      served.add((await info()).node);
    }
    assert.deepEqual([...served].sort(), ["node-1", "node-2", "node-3"]);
  });

  test("the cookie keeps a client on its node", async () => {
    const first = await info();
    assert.equal(first.cookie, `herald_node=${first.node}`);
    for (let i = 0; i < 5; i++) {
      const again = await info(first.cookie);
      assert.equal(again.node, first.node);
    }
  });

  test("websocket upgrade goes to the cookie's node", async () => {
    const client = await TestClient.open(`${base.replace("http", "ws")}/ws`, { headers: { Cookie: "herald_node=node-3" } });
    const reply = await client.request({ type: "connect" });
    assert.equal(reply.result.node, "node-3");
    client.close();
  });

  test("a cookie for a stopped node is served elsewhere", async () => {
    await nodes[1]!.close();
    const served = await info("herald_node=node-2");
    assert.notEqual(served.node, "node-2");
    assert.equal(served.cookie, `herald_node=${served.node}`);
  });
});
