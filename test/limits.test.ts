import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { upgradeStatus } from "./support/auth-probes.js";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { within } from "./support/timeout.js";
import { waitUntil } from "./support/ports.js";
import { RawWebSocket } from "./support/raw-websocket.js";

describe("limits", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({
      limits: { commandRate: 50, commandBurst: 100, maxChannelsPerConnection: 3, maxConnectionsPerIp: 40 },
      websocket: { maxMessageSize: 4096 },
    });
  });

  after(async () => {
    await node.close();
  });

  /** Open connections as the node counts them; a client that never reads cannot tell when it was closed. */
  function openConnections(): number {
    return (node.server as unknown as { connectionCount(): number }).connectionCount();
  }

  /** Subscribes a canary and publishes to it every 5 ms until stopped; `check` asserts it got every event. */
  async function startCanary() {
    const canary = await TestClient.open(node.ws);
    await canary.request({ type: "subscribe", channel: "canary" });
    let published = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        await publish(node.http, "canary", { n: ++published });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    return {
      async check() {
        await waitUntil(() => published >= 20, 10_000, "the canary to get 20 events");
        running = false;
        await loop;
        const events = await canary.waitForPubs("canary", published);
        assert.deepEqual(
          events.map((event) => event.data.n),
          Array.from({ length: published }, (_, i) => i + 1),
        );
        canary.close();
      },
    };
  }

  test("ping flood closes with 4029", async (t) => {
    await waitUntil(() => openConnections() === 0, 10_000, "earlier connections to close");
    const canary = await startCanary();
    const flooder = await TestClient.open(node.ws);
    const started = Date.now();
    for (let i = 0; i < 100_000; i++) {
      flooder.socket.ping();
    }
    t.diagnostic(`100,000 pings sent in ${Date.now() - started} ms`);
    const closed = await within(flooder.closed, 10_000, "the close");
    assert.equal(closed.code, 4029);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await canary.check();
  });

  test("pings within the rate get pongs", async () => {
    const client = await TestClient.open(node.ws);
    const pong = new Promise((resolve) => client.socket.once("pong", resolve));
    client.socket.ping();
    await pong;
    client.close();
  });

  test("command flood gets rate_limited then 4029", async () => {
    const canary = await startCanary();
    const client = await TestClient.open(node.ws);
    for (let i = 0; i < 1_000; i++) {
      client.socket.send(JSON.stringify({ id: i + 1, type: "ping" }));
    }
    const closed = await within(client.closed, 10_000, "the close");
    assert.equal(closed.code, 4029);
    const limited = client.messages.filter((message) => message.type === "error" && message.error.code === "rate_limited");
    assert.equal(limited.length, 1);
    // At most one burst is served; replies still in flight at the close are dropped.
    const replies = client.messages.filter((message) => message.type === "reply");
    assert.ok(replies.length <= 100, `${replies.length} commands were served`);
    await canary.check();
  });

  test("raw ping flood from a socket that never reads", async () => {
    await waitUntil(() => openConnections() === 0, 10_000, "earlier connections to close");
    const canary = await startCanary();
    const raw = await RawWebSocket.open(node.port);
    await waitUntil(() => openConnections() === 2, 5_000, "the flooder to be counted");
    raw.pause();
    for (let i = 0; i < 100_000; i++) {
      raw.ping();
    }
    // The node stops sending pongs and cuts the socket 5 s after its close frame, read or not.
    await waitUntil(() => openConnections() === 1, 10_000, "the flooder to be closed");
    await canary.check();
    raw.destroy();
  });

  test("channels per connection", async () => {
    const client = await TestClient.open(node.ws);
    for (const channel of ["a", "b", "c"]) {
      assert.equal((await client.request({ type: "subscribe", channel })).type, "reply");
    }
    const fourth = await client.request({ type: "subscribe", channel: "d" });
    assert.equal(fourth.error.code, "too_many_channels");
    await client.request({ type: "unsubscribe", channel: "a" });
    assert.equal((await client.request({ type: "subscribe", channel: "d" })).type, "reply");
    client.close();
  });

  test("oversized message closes with 1009", async () => {
    const client = await TestClient.open(node.ws);
    client.socket.send(JSON.stringify({ id: 1, type: "publish", channel: "x", data: "y".repeat(5000) }));
    const closed = await within(client.closed, 10_000, "the close");
    assert.equal(closed.code, 1009);
  });

  test("connections per address", async () => {
    // Earlier tests' sockets may still be closing; count only from a settled state.
    await waitUntil(() => openConnections() === 0, 10_000, "earlier connections to close");
    // Rejected upgrades release their slot: this node has no token key, so any token is rejected.
    for (let i = 0; i < 50; i++) {
      const rejected = await upgradeStatus(`${node.ws}?token=x`);
      assert.equal(rejected.status, 401);
    }
    const open: TestClient[] = [];
    for (let i = 0; i < 40; i++) {
      open.push(await TestClient.open(node.ws));
    }
    const refused = await upgradeStatus(node.ws);
    assert.equal(refused.status, 429);
    assert.equal(refused.code, "too_many_connections");

    open.pop()!.close();
    await waitUntil(() => openConnections() === 39, 5_000, "one connection to close");
    const accepted = await upgradeStatus(node.ws);
    assert.equal(accepted.status, 101);
    open.forEach((client) => client.close());
  });
});
