import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { Identity } from "../src/auth/identity.js";
import { protocolError } from "../src/errors.js";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";

const TOKEN = "admin-api-test-token";
const AUTH = { Authorization: `Bearer ${TOKEN}` };
/** The stats channel as the admin page requests it over SSE. */
const STATS_SSE = "/sse?channel=%24admin%3Astats";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Reads an event stream until `done` returns true for the messages so far, then aborts it. */
async function readStream(
  url: string,
  done: (messages: EventSourceMessage[]) => boolean,
  timeoutMs = 10_000,
  headers: Record<string, string> = {},
) {
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
  const response = await fetch(url, { signal: controller.signal, headers });
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

  test("sse relays every node's stats", async () => {
    const isStats = (message: EventSourceMessage) => message.event === undefined;
    const { response, messages, retry } = await readStream(
      `${node.http}${STATS_SSE}&token=${encodeURIComponent(TOKEN)}`,
      (received) => received.filter(isStats).length >= 3,
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("cache-control"), "no-cache");
    assert.equal(retry, 2_000);
    assert.equal(messages[0]?.event, "subscribed");
    assert.equal(JSON.parse(messages[0]!.data).channels[0].channel, "$admin:stats");
    const stats = messages.filter(isStats);
    assert.ok(stats.length >= 3);
    for (const message of stats) {
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

  test("sse takes the admin token as a header", async () => {
    const { response, messages } = await readStream(`${node.http}${STATS_SSE}`, (received) => received.length >= 2, 10_000, AUTH);
    assert.equal(response.status, 200);
    assert.equal(messages[0]?.event, "subscribed");
    assert.equal(JSON.parse(messages[1]!.data).data.node, node.server.nodeId);
  });

  test("clients cannot follow the stats channel", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel: "$admin:stats" });
    assert.equal(reply.type, "error");
    assert.equal(reply.error.code, "invalid_channel");
    client.socket.close(1000);
    await client.closed;

    const before = await scrape(node.http);
    const anonymous = await fetch(`${node.http}${STATS_SSE}`);
    assert.equal(anonymous.status, 400);
    assert.equal(((await anonymous.json()) as any).error.code, "invalid_channel");
    const mixed = await fetch(`${node.http}/sse?channel=news&channel=%24admin%3Astats`);
    assert.equal(mixed.status, 400);
    assert.equal(((await mixed.json()) as any).error.code, "invalid_channel");

    // This node verifies no tokens, so any token but the admin token is invalid.
    const wrong = await fetch(`${node.http}${STATS_SSE}&token=wrong`);
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as any).error.code, "token_invalid");
    const wrongHeader = await fetch(`${node.http}${STATS_SSE}`, { headers: { Authorization: "Bearer wrong" } });
    assert.equal(wrongHeader.status, 401);
    const invalid = { transport: "sse", code: "token_invalid" };
    await waitUntil(
      async () => sample(await scrape(node.http), "herald_auth_failures_total", invalid) === sample(before, "herald_auth_failures_total", invalid) + 2,
      5_000,
      "two sse auth failures",
    );
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
      for (const path of ["/admin", "/admin/", "/admin/admin.js", "/admin/api/stats"]) {
        const response = await fetch(`${node.http}${path}`);
        assert.equal(response.status, 404, path);
        assert.equal(((await response.json()) as any).error.code, "not_found", path);
      }
    } finally {
      await node.close();
    }
  });
});

describe("admin sse stream", () => {
  test("drain ends the stream with a retry", async () => {
    const node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 100 } });
    let closing: Promise<void> | undefined;
    const { messages, retry } = await readStream(`${node.http}${STATS_SSE}&token=${TOKEN}`, (received) => {
      if (received.some((message) => message.event === undefined) && closing === undefined) {
        closing = node.close();
      }
      return false;
    });
    await closing;
    assert.ok(messages.length >= 2);
    // SSE streams end at drain with a retry between sse.retryMs and five times it.
    assert.ok(retry !== undefined && retry >= 2_000 && retry <= 10_000, `retry ${retry}`);
  });

  test("user token cannot follow the stats channel", async () => {
    const user: Identity = { user: "alice", anonymous: false, subscribe: ["*"], publish: [], expiresAt: undefined };
    const authenticator = {
      enabled: true,
      async authenticate(token: string | undefined): Promise<Identity> {
        if (token === "alice-token") {
          return user;
        }
        throw protocolError("token_invalid", "Unknown test token.");
      },
    };
    const node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 100 } }, { authenticator });
    try {
      const forbidden = await fetch(`${node.http}${STATS_SSE}&token=alice-token`);
      assert.equal(forbidden.status, 403);
      assert.equal(((await forbidden.json()) as any).error.code, "forbidden");

      // The admin token is checked by the node itself, never by the authenticator.
      const { response, messages } = await readStream(`${node.http}${STATS_SSE}&token=${TOKEN}`, (received) => received.length >= 2);
      assert.equal(response.status, 200);
      assert.equal(JSON.parse(messages[1]!.data).channel, "$admin:stats");
    } finally {
      await node.close();
    }
  });

  test("admin stream counts as admin, not sse", async () => {
    const node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 100 } });
    try {
      const { response } = await readStream(`${node.http}${STATS_SSE}&token=${TOKEN}`, (received) => {
        return received.length >= 2;
      });
      assert.equal(response.status, 200);
      await waitUntil(
        async () => sample(await scrape(node.http), "herald_connections_closed_total", { transport: "admin", reason: "client_closed" }) === 1,
        5_000,
        "the admin stream to close",
      );
      const samples = await scrape(node.http);
      assert.equal(sample(samples, "herald_connections_opened_total", { transport: "admin" }), 1);
      assert.equal(sample(samples, "herald_connections_opened_total", { transport: "sse" }), 0);
      assert.equal(sample(samples, "herald_connections", { transport: "admin" }), 0);
    } finally {
      await node.close();
    }
  });
});
