import assert from "node:assert/strict";
import { test } from "node:test";
import { startHerald, TestClient } from "./support/herald.js";

test("api info on memory lists this node only", async () => {
  const node = await startHerald({ nodeId: "solo" });
  try {
    const client = await TestClient.open(node.ws);
    const response = await fetch(`${node.http}/api/info`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("set-cookie") ?? "", /^herald_node=solo; Path=\/; HttpOnly; SameSite=Lax$/);
    const body = (await response.json()) as any;
    assert.equal(body.broker, "memory");
    assert.deepEqual(body.nodes.map((entry: any) => entry.id), ["solo"]);
    assert.equal(body.nodes[0].address, `127.0.0.1:${node.port}`);
    assert.equal(body.nodes[0].connections, 1);
    client.close();
  } finally {
    await node.close();
  }
});

test("websocket upgrade sets the affinity cookie", async () => {
  const node = await startHerald({ nodeId: "cookie-node" });
  try {
    const client = new TestClient(node.ws);
    const cookie = new Promise<string | undefined>((resolve) => {
      client.socket.once("upgrade", (response) => resolve(response.headers["set-cookie"]?.[0]));
    });
    await client.opened;
    assert.match((await cookie) ?? "", /^herald_node=cookie-node;/);
    client.close();
  } finally {
    await node.close();
  }
});
