import assert from "node:assert/strict";
import { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { postJson, startHerald } from "./support/herald.js";

describe("client publish over HTTP", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ apiKeys: ["backend-key"], namespaces: { chat: { clientPublish: true } } });
  });

  after(async () => {
    await node.close();
  });

  test("anonymous client publishes where allowed", async () => {
    const { status, body } = await postJson(node.http, "/api/publish", { channel: "chat:lobby", data: "hi" });
    assert.equal(status, 200);
    assert.equal(body.channel, "chat:lobby");
    assert.equal(body.offset, 1);
  });

  test("publish responses vary by Origin", async () => {
    const own = await postJson(node.http, "/api/publish", { channel: "chat:lobby", data: "same origin" }, { Origin: node.http });
    assert.equal(own.status, 200);
    assert.equal(own.headers.get("vary"), "Origin");
    const foreign = await postJson(node.http, "/api/publish", { channel: "chat:lobby", data: "other site" }, { Origin: "https://other.example" });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error.code, "origin_forbidden");
    assert.equal(foreign.headers.get("vary"), "Origin");
  });

  test("anonymous client rejected elsewhere", async () => {
    const { status, body } = await postJson(node.http, "/api/publish", { channel: "news", data: "no" });
    assert.equal(status, 401);
    assert.equal(body.error.code, "unauthorized");
  });

  test("API key publishes anywhere", async () => {
    const { status } = await postJson(node.http, "/api/publish", { channel: "news", data: 1 }, { Authorization: "Bearer backend-key" });
    assert.equal(status, 200);
  });

  test("unknown bearer without token keys", async () => {
    // With no token key configured a Bearer value can only be an API key, so a wrong one is a wrong key.
    const { status, body } = await postJson(node.http, "/api/publish", { channel: "chat:lobby", data: 1 }, { Authorization: "Bearer not-a-key" });
    assert.equal(status, 401);
    assert.equal(body.error.code, "unauthorized");
  });

  test("invalid channel from a client", async () => {
    const { status, body } = await postJson(node.http, "/api/publish", { channel: "chat:a b", data: 1 });
    assert.equal(status, 400);
    assert.equal(body.error.code, "invalid_channel");
  });

  test("batch and history stay backend only", async () => {
    const batch = await postJson(node.http, "/api/publish_batch", { items: [{ channel: "chat:lobby", data: 1 }] });
    assert.equal(batch.status, 401);
    const history = await fetch(`${node.http}/api/history?channel=chat:lobby`);
    assert.equal(history.status, 401);
  });
});

describe("websocket.enabled false", () => {
  test("upgrade to /ws gets 404", async () => {
    const node = await startHerald({ websocket: { enabled: false } });
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = new Socket();
        let text = "";
        socket.on("data", (chunk) => (text += chunk.toString()));
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
        socket.connect(node.port, "127.0.0.1", () => {
          socket.write(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
          );
        });
      });
      assert.match(answer, /^HTTP\/1\.1 404 /);
      assert.match(answer, /WebSocket is turned off on this node \(websocket\.enabled is false\)/);
    } finally {
      await node.close();
    }
  });
});
