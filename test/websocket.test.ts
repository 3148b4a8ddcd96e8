import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { publish, startHerald, TestClient } from "./support/herald.js";

describe("websocket", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald();
  });

  after(async () => {
    await node.close();
  });

  test("subscribe receives HTTP publishes", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel: "smoke" });
    assert.equal(reply.type, "reply");
    assert.equal(reply.result.offset, 0);
    await publish(node.http, "smoke", { n: 1 });
    const [event] = await client.waitForPubs("smoke", 1);
    assert.deepEqual(event, { type: "pub", channel: "smoke", offset: 1, data: { n: 1 } });
    client.close();
  });
});
