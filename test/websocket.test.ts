import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postJson, publish, startHerald, TestClient } from "./support/herald.js";

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

  test("subscribe reply names epoch, offset and recovered", async () => {
    const first = await publish(node.http, "shape", "before");
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel: "shape" });
    assert.deepEqual(reply.result, { channel: "shape", epoch: first.epoch, offset: 1, recovered: true });
    assert.equal(client.pubs("shape").length, 0, "a subscribe without since sends no history");
    client.close();
  });

  test("concurrent publishes reach every subscriber in offset order", async () => {
    const channel = "fanout";
    const subscribers = await Promise.all([1, 2, 3, 4].map(() => TestClient.open(node.ws)));
    for (const subscriber of subscribers) {
      const reply = await subscriber.request({ type: "subscribe", channel });
      assert.equal(reply.type, "reply");
    }

    // Five publishers send 200 publishes each, all in flight at once.
    const total = 1_000;
    const publishers = 5;
    const dataByOffset = new Map<number, unknown>();
    await Promise.all(
      Array.from({ length: publishers }, async (_, publisher) => {
        const pending = [];
        for (let i = 0; i < total / publishers; i++) {
          const data = { publisher, i };
          pending.push(
            postJson(node.http, "/api/publish", { channel, data }).then(({ status, body }) => {
              assert.equal(status, 200);
              assert.equal(dataByOffset.has(body.offset), false, `offset ${body.offset} was assigned twice`);
              dataByOffset.set(body.offset, data);
            }),
          );
        }
        await Promise.all(pending);
      }),
    );
    assert.equal(dataByOffset.size, total);

    for (const subscriber of subscribers) {
      const events = await subscriber.waitForPubs(channel, total);
      assert.equal(events.length, total);
      for (let i = 0; i < total; i++) {
        const event = events[i];
        assert.equal(event.offset, i + 1, `event ${i} has offset ${event.offset}`);
        assert.deepEqual(event.data, dataByOffset.get(i + 1), `data at offset ${i + 1}`);
      }
      subscriber.close();
    }
  });

  test("publish command needs clientPublish", async () => {
    const client = await TestClient.open(node.ws);
    const denied = await client.request({ type: "publish", channel: "news", data: 1 });
    assert.equal(denied.type, "error");
    assert.equal(denied.error.code, "publish_forbidden");
    client.close();
  });

  test("history command returns kept events", async () => {
    await publish(node.http, "kept", "a");
    await publish(node.http, "kept", "b");
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "history", channel: "kept", since: 1 });
    assert.equal(reply.type, "reply");
    assert.equal(reply.result.top, 2);
    assert.equal(reply.result.earliest, 1);
    assert.deepEqual(reply.result.publications, [{ offset: 2, data: "b" }]);
    client.close();
  });

  test("unsubscribe stops delivery", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "subscribe", channel: "leave" });
    const reply = await client.request({ type: "unsubscribe", channel: "leave" });
    assert.deepEqual(reply.result, {});
    await publish(node.http, "leave", 1);
    const again = await client.request({ type: "unsubscribe", channel: "leave" });
    assert.equal(again.error.code, "not_subscribed");
    assert.equal(client.pubs("leave").length, 0);
    client.close();
  });

  test("ping command replies", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "ping" });
    assert.deepEqual(reply, { id: 1, type: "reply", result: {} });
    client.close();
  });

  test("GET /ws without upgrade is a 400", async () => {
    const response = await fetch(`${node.http}/ws`);
    assert.equal(response.status, 400);
    const body = (await response.json()) as any;
    assert.equal(body.error.code, "bad_request");
  });
});

describe("websocket with a client-publish namespace", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ namespaces: { chat: { clientPublish: true } } });
  });

  after(async () => {
    await node.close();
  });

  test("client publish reaches another client", async () => {
    const sender = await TestClient.open(node.ws);
    const receiver = await TestClient.open(node.ws);
    await receiver.request({ type: "subscribe", channel: "chat:room" });
    const reply = await sender.request({ type: "publish", channel: "chat:room", data: { text: "hi" } });
    assert.equal(reply.type, "reply");
    assert.equal(reply.result.channel, "chat:room");
    assert.equal(reply.result.offset, 1);
    const [event] = await receiver.waitForPubs("chat:room", 1);
    assert.deepEqual(event.data, { text: "hi" });
    sender.close();
    receiver.close();
  });
});
