import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { publish, startHerald, TestClient } from "./support/herald.js";

describe("websocket bad input", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  let watcher: TestClient;
  let published = 0;

  /** Publishes on the watched channel and checks the watcher got it next, in order. */
  async function assertWatcherReceives(): Promise<void> {
    published++;
    await publish(node.http, "steady", { n: published });
    const events = await watcher.waitForPubs("steady", published);
    assert.equal(events.length, published);
    assert.equal(events[published - 1].offset, published);
  }

  before(async () => {
    node = await startHerald({ websocket: { maxMessageSize: 1024 }, limits: { maxChannelsPerConnection: 3 } });
    watcher = await TestClient.open(node.ws);
    const reply = await watcher.request({ type: "subscribe", channel: "steady" });
    assert.equal(reply.type, "reply");
  });

  after(async () => {
    await assertWatcherReceives();
    assert.deepEqual(
      watcher.pubs("steady").map((event) => event.offset),
      Array.from({ length: published }, (_, i) => i + 1),
    );
    watcher.close();
    await node.close();
  });

  test("non-JSON frame gets invalid_json and the connection stays", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send("{not json");
    const error = await client.waitFor((message) => message.type === "error");
    assert.deepEqual(Object.keys(error).sort(), ["error", "type"]);
    assert.equal(error.error.code, "invalid_json");
    const pong = await client.request({ type: "ping" });
    assert.equal(pong.type, "reply");
    await assertWatcherReceives();
    client.close();
  });

  test("non-object JSON gets invalid_command", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send("[1,2]");
    const error = await client.waitFor((message) => message.type === "error");
    assert.equal(error.error.code, "invalid_command");
    await assertWatcherReceives();
    client.close();
  });

  test("unknown command gets unknown_command with its id", async () => {
    const client = await TestClient.open(node.ws);
    const error = await client.request({ type: "dance" });
    assert.equal(error.type, "error");
    assert.equal(error.id, 1);
    assert.equal(error.error.code, "unknown_command");
    assert.match(error.error.message, /dance/);
    await assertWatcherReceives();
    client.close();
  });

  test("command without type is invalid", async () => {
    const client = await TestClient.open(node.ws);
    const error = await client.request({ channel: "steady" });
    assert.equal(error.type, "error");
    assert.equal(error.id, 1);
    assert.equal(error.error.code, "invalid_command");
    assert.match(error.error.message, /no "type"/);
    await assertWatcherReceives();
    client.close();
  });

  test("command without id gets missing_id", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(JSON.stringify({ type: "subscribe", channel: "steady" }));
    const error = await client.waitFor((message) => message.type === "error");
    assert.equal(error.id, undefined);
    assert.equal(error.error.code, "missing_id");
    assert.equal(client.pubs("steady").length, 0);
    await assertWatcherReceives();
    client.close();
  });

  test("command with a bad id gets invalid_command", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(JSON.stringify({ id: -1, type: "ping" }));
    const error = await client.waitFor((message) => message.type === "error");
    assert.equal(error.error.code, "invalid_command");
    await assertWatcherReceives();
    client.close();
  });

  test("subscribe without a channel gets invalid_command", async () => {
    const client = await TestClient.open(node.ws);
    const error = await client.request({ type: "subscribe" });
    assert.equal(error.error.code, "invalid_command");
    assert.match(error.error.message, /channel/);
    await assertWatcherReceives();
    client.close();
  });

  test("invalid channel name gets invalid_channel", async () => {
    const client = await TestClient.open(node.ws);
    for (const channel of ["", "has space", "x".repeat(201), "new\nline"]) {
      const error = await client.request({ type: "subscribe", channel });
      assert.equal(error.type, "error", `channel ${JSON.stringify(channel)}`);
      assert.equal(error.error.code, "invalid_channel", `channel ${JSON.stringify(channel)}`);
    }
    await assertWatcherReceives();
    client.close();
  });

  test("second subscribe to a channel gets already_subscribed", async () => {
    const client = await TestClient.open(node.ws);
    const first = await client.request({ type: "subscribe", channel: "steady" });
    assert.equal(first.type, "reply");
    const second = await client.request({ type: "subscribe", channel: "steady" });
    assert.equal(second.error.code, "already_subscribed");
    await assertWatcherReceives();
    const events = await client.waitForPubs("steady", 1);
    assert.equal(events.length, 1, "the first subscription still delivers, once");
    client.close();
  });

  test("subscribe past the channel limit gets too_many_channels", async () => {
    const client = await TestClient.open(node.ws);
    for (const channel of ["a1", "a2", "a3"]) {
      const reply = await client.request({ type: "subscribe", channel });
      assert.equal(reply.type, "reply");
    }
    const error = await client.request({ type: "subscribe", channel: "a4" });
    assert.equal(error.error.code, "too_many_channels");
    await assertWatcherReceives();
    client.close();
  });

  test("second connect gets bad_request", async () => {
    const client = await TestClient.open(node.ws);
    const first = await client.request({ type: "connect" });
    assert.equal(first.type, "reply");
    const second = await client.request({ type: "connect" });
    assert.equal(second.error.code, "bad_request");
    await assertWatcherReceives();
    client.close();
  });

  test("command sent before connect replies waits for it", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(JSON.stringify({ id: 1, type: "subscribe", channel: "early" }));
    client.socket.send(JSON.stringify({ id: 2, type: "connect" }));
    const subscribed = await client.waitFor((message) => message.id === 1);
    const connected = await client.waitFor((message) => message.id === 2);
    assert.equal(subscribed.type, "reply");
    assert.equal(connected.type, "error", "the subscribe already connected the client");
    assert.equal(connected.error.code, "bad_request");
    client.close();
  });

  test("token on a node without token keys gets token_invalid", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "connect", token: "abc" });
    assert.equal(reply.error.code, "token_invalid");
    await assertWatcherReceives();
    client.close();
  });

  test("frame over the maximum size closes with 1009", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(JSON.stringify({ id: 1, type: "ping", pad: "x".repeat(2048) }));
    const closed = await client.closed;
    assert.equal(closed.code, 1009);
    await assertWatcherReceives();
  });

  test("binary frame closes with 1003", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(Buffer.from(JSON.stringify({ id: 1, type: "ping" })), { binary: true });
    const closed = await client.closed;
    assert.equal(closed.code, 1003);
    await assertWatcherReceives();
  });

  test("upgrade on an unknown path is a 404", async () => {
    const client = new TestClient(node.ws.replace("/ws", "/nope"));
    await assert.rejects(client.opened, /404/);
    await assertWatcherReceives();
  });
});

describe("websocket ping", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ websocket: { pingIntervalMs: 100, missedPongs: 2 } });
  });

  after(async () => {
    await node.close();
  });

  test("client that stops answering pings is closed", async () => {
    const silent = await TestClient.open(node.ws, { autoPong: false });
    let pings = 0;
    silent.socket.on("ping", () => pings++);
    const answering = await TestClient.open(node.ws);

    const closed = await silent.closed;
    assert.equal(closed.code, 1011);
    assert.equal(closed.reason, "ping timeout");
    assert.equal(pings, 2, "closed after exactly two unanswered pings");

    // Wait well past the timeout: the client that sends pongs stays open.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(answering.socket.readyState, answering.socket.OPEN);
    const reply = await answering.request({ type: "ping" });
    assert.equal(reply.type, "reply");
    answering.close();
  });
});
