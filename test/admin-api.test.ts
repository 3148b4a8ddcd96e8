import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";

const TOKEN = "admin-api-test-token";
const AUTH = { Authorization: `Bearer ${TOKEN}` };

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Reads an event stream until `done` returns true for the messages so far, then aborts it. */
async function readStream(url: string, done: (messages: EventSourceMessage[]) => boolean, timeoutMs = 10_000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const messages: EventSourceMessage[] = [];
  let retry: number | undefined;
  const parser = createParser({
    onEvent: (message) => messages.push(message),
    onRetry: (ms) => {
      retry = ms;
    },
  });
  const response = await fetch(url, { signal: controller.signal });
  try {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    while (!done(messages)) {
      const { value, done: ended } = await reader.read();
      if (ended) {
        break;
      }
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch (error) {
    if (!controller.signal.aborted) {
      throw error;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { response, messages, retry };
}

describe("admin API", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 100 } });
  });

  after(async () => {
    await node.close();
  });

  test("page is served without data", async () => {
    const response = await fetch(`${node.http}/admin`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(response.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const html = await response.text();
    assert.match(html, /<script type="module" src="\/admin\/admin.js">/);
    assert.doesNotMatch(html, new RegExp(node.server.nodeId));

    const script = await fetch(`${node.http}/admin/admin.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
  });

  test("stats need the token", async () => {
    const missing = await fetch(`${node.http}/admin/api/stats`);
    assert.equal(missing.status, 401);
    assert.equal(((await missing.json()) as any).error.code, "unauthorized");

    const wrong = await fetch(`${node.http}/admin/api/stats`, { headers: { Authorization: "Bearer wrong" } });
    assert.equal(wrong.status, 401);
    const wrongQuery = await fetch(`${node.http}/admin/api/stats?token=wrong`);
    assert.equal(wrongQuery.status, 401);
    const stream = await fetch(`${node.http}/admin/api/stream`);
    assert.equal(stream.status, 401);
    const publishWithout = await fetch(`${node.http}/admin/api/publish`, { method: "POST", body: "{}" });
    assert.equal(publishWithout.status, 401);
  });

  test("stats list this node's connections and channels", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "subscribe", channel: "admin:stats-test" });
    await publish(node.http, "admin:stats-test", { hello: "admin" });
    await client.waitForPubs("admin:stats-test", 1);

    let stats: any;
    await waitUntil(async () => {
      const response = await fetch(`${node.http}/admin/api/stats`, { headers: AUTH });
      assert.equal(response.status, 200);
      stats = ((await response.json()) as any).nodes.find((entry: any) => entry.node === node.server.nodeId);
      return stats?.connections.websocket === 1 && stats.latest.length > 0;
    }, 5_000, "stats with one connection and one publication");

    assert.equal(stats.state, "running");
    assert.equal(stats.subscriptions, 1);
    assert.deepEqual(
      stats.channels.map((entry: any) => [entry.channel, entry.subscribers]),
      [["admin:stats-test", 1]],
    );
    assert.deepEqual(stats.latest[0], {
      channel: "admin:stats-test",
      offset: 1,
      time: stats.latest[0].time,
      data: '{"hello":"admin"}',
    });
    client.socket.close(1000);
    await client.closed;
  });

  test("query token also works", async () => {
    const response = await fetch(`${node.http}/admin/api/stats?token=${encodeURIComponent(TOKEN)}`);
    assert.equal(response.status, 200);
  });

  test("stream relays every node's stats", async () => {
    const { response, messages, retry } = await readStream(
      `${node.http}/admin/api/stream?token=${encodeURIComponent(TOKEN)}`,
      (received) => received.length >= 3,
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-cache");
    assert.equal(response.headers.get("x-accel-buffering"), "no");
    assert.equal(retry, 2_000);
    assert.ok(messages.length >= 3);
    for (const message of messages) {
      const parsed = JSON.parse(message.data);
      assert.equal(parsed.channel, "$admin:stats");
      assert.equal(parsed.data.node, node.server.nodeId);
      assert.equal(typeof parsed.offset, "number");
    }
  });

  test("publish reaches subscribers", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "subscribe", channel: "admin:publish-test" });
    const response = await fetch(`${node.http}/admin/api/publish`, {
      method: "POST",
      headers: { ...AUTH, "Content-Type": "application/json" },
      body: JSON.stringify({ channel: "admin:publish-test", data: { from: "admin" } }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as any;
    assert.equal(body.channel, "admin:publish-test");
    assert.equal(body.offset, 1);
    const [event] = await client.waitForPubs("admin:publish-test", 1);
    assert.deepEqual(event.data, { from: "admin" });
    client.socket.close(1000);
    await client.closed;
  });

  test("clients cannot follow the stats channel", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel: "$admin:stats" });
    assert.equal(reply.type, "error");
    assert.equal(reply.error.code, "invalid_channel");
    client.socket.close(1000);
    await client.closed;
  });

  test("unknown admin path is 404", async () => {
    const response = await fetch(`${node.http}/admin/api/nothing`, { headers: AUTH });
    assert.equal(response.status, 404);
  });
});

describe("admin without a token", () => {
  test("every admin path answers 404", async () => {
    const node = await startHerald();
    try {
      for (const path of ["/admin", "/admin/", "/admin/admin.js", "/admin/api/stats", "/admin/api/stream"]) {
        const response = await fetch(`${node.http}${path}`);
        assert.equal(response.status, 404, path);
        assert.equal(((await response.json()) as any).error.code, "not_found", path);
      }
    } finally {
      await node.close();
    }
  });
});

describe("admin stream at drain", () => {
  test("drain ends the stream with a retry", async () => {
    const node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 100 } });
    let closing: Promise<void> | undefined;
    const { messages, retry } = await readStream(`${node.http}/admin/api/stream?token=${TOKEN}`, (received) => {
      if (received.length >= 1 && closing === undefined) {
        closing = node.close();
      }
      return false;
    });
    await closing;
    assert.ok(messages.length >= 1);
    assert.ok(retry !== undefined && retry >= 2_000 && retry < 4_000, `retry ${retry}`);
  });
});
