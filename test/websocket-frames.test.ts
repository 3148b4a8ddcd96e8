import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, startHerald, TestClient } from "./support/herald.js";

test("websocket pushes are text frames", async () => {
  const node = await startHerald();
  try {
    const client = await TestClient.open(node.ws);
    const kinds: boolean[] = [];
    client.socket.on("message", (_data, isBinary) => kinds.push(isBinary));
    await client.request({ type: "subscribe", channel: "frames" });
    await publish(node.http, "frames", { n: 1 });
    await client.waitForPubs("frames", 1);
    client.close();
    // Browsers hand binary frames to pages as Blobs, which JSON.parse cannot read.
    assert.deepEqual(kinds, [false, false]);
  } finally {
    await node.close();
  }
});
