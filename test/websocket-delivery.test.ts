import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postJson, startHerald, TestClient } from "./support/herald.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Records whether each server frame was text, alongside the messages it carried. */
function frameKinds(client: TestClient): boolean[] {
  const binary: boolean[] = [];
  client.socket.on("message", (_data, isBinary) => binary.push(isBinary));
  return binary;
}

async function publishBatch(node: Node, channel: string, count: number): Promise<void> {
  const items = Array.from({ length: count }, (_, i) => ({ channel, data: { i } }));
  const { status } = await postJson(node.http, "/api/publish_batch", { items });
  assert.equal(status, 200);
}

for (const writeDelayMs of [0, 20]) {
  describe(`websocket delivery, writeDelayMs ${writeDelayMs}`, () => {
    let node: Node;

    before(async () => {
      node = await startHerald({ websocket: { writeDelayMs } });
    });

    after(async () => {
      await node.close();
    });

    test("pushes arrive as text frames", async () => {
      const client = await TestClient.open(node.ws);
      const binary = frameKinds(client);
      await client.request({ type: "subscribe", channel: "text" });
      await publishBatch(node, "text", 3);
      await client.waitForPubs("text", 3);
      assert.ok(binary.length > 0);
      assert.deepEqual(
        binary.filter((isBinary) => isBinary),
        [],
      );
      client.close();
    });

    test("batch keeps offset order per subscriber", async () => {
      const clients = await Promise.all([TestClient.open(node.ws), TestClient.open(node.ws)]);
      for (const client of clients) {
        await client.request({ type: "subscribe", channel: "order" });
      }
      await publishBatch(node, "order", 200);
      for (const client of clients) {
        const events = await client.waitForPubs("order", 200);
        assert.deepEqual(
          events.map((event) => event.offset),
          Array.from({ length: 200 }, (_, i) => i + 1),
        );
        assert.deepEqual(events[199].data, { i: 199 });
        client.close();
      }
    });

    test("reply after a batch follows its events", async () => {
      const client = await TestClient.open(node.ws);
      await client.request({ type: "subscribe", channel: "reply-order" });
      await publishBatch(node, "reply-order", 50);
      const reply = await client.request({ type: "ping" });
      assert.equal(reply.type, "reply");
      const replyIndex = client.messages.indexOf(reply);
      const lastPub = client.messages.findLastIndex((message) => message.type === "pub");
      assert.equal(client.pubs("reply-order").length, 50, "every event arrived before the ping reply");
      assert.ok(lastPub < replyIndex);
      client.close();
    });
  });
}
