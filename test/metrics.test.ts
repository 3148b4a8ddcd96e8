import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { ConfigError, loadConfig } from "../src/config.js";
import { HeraldServer } from "../src/server.js";
import { postJson, publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";
import { openSse, pausedReader, type SseResponse } from "./support/sse.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

const WS = { transport: "websocket" };
const SSE = { transport: "sse" };
const POLL = { transport: "poll" };

async function subscribed(node: Node, channel: string): Promise<TestClient> {
  const client = await TestClient.open(node.ws);
  const reply = await client.request({ type: "subscribe", channel });
  assert.equal(reply.type, "reply", `subscribe to ${channel} failed: ${JSON.stringify(reply)}`);
  return client;
}

async function waitForSample(node: Node, name: string, labels: Record<string, string>, expected: number): Promise<void> {
  let last = Number.NaN;
  await waitUntil(
    async () => {
      last = sample(await scrape(node.http), name, labels);
      return last === expected;
    },
    10_000,
    `${name} ${JSON.stringify(labels)} to be ${expected} (last ${last})`,
  );
}

describe("metrics", () => {
  let node: Node;

  before(async () => {
    node = await startHerald();
  });

  after(async () => {
    await node.close();
  });

  test("exposition has process and herald metrics", async () => {
    const response = await fetch(`${node.http}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(text, /^# TYPE herald_delivery_latency_seconds histogram$/m);
    assert.match(text, /^herald_node_state\{state="running"\} 1$/m);
    assert.match(text, /^herald_broker_available 1$/m);
    assert.match(text, new RegExp(`^herald_node_info\\{node="${node.server.nodeId}"\\} 1$`, "m"));
  });

  test("counts follow connect, subscribe, deliver and leave", async () => {
    const before = await scrape(node.http);
    const clients = [await subscribed(node, "metrics:a"), await subscribed(node, "metrics:a"), await subscribed(node, "metrics:b")];

    const connected = await scrape(node.http);
    assert.equal(sample(connected, "herald_connections", WS), sample(before, "herald_connections", WS) + 3);
    assert.equal(sample(connected, "herald_connections_opened_total", WS), sample(before, "herald_connections_opened_total", WS) + 3);
    assert.equal(sample(connected, "herald_subscriptions"), sample(before, "herald_subscriptions") + 3);
    assert.equal(sample(connected, "herald_channels"), sample(before, "herald_channels") + 2);

    await publish(node.http, "metrics:a", { n: 1 });
    await publish(node.http, "metrics:a", { n: 2 });
    await publish(node.http, "metrics:b", { n: 3 });
    await clients[0]!.waitForPubs("metrics:a", 2);
    await clients[1]!.waitForPubs("metrics:a", 2);
    await clients[2]!.waitForPubs("metrics:b", 1);

    const delivered = await scrape(node.http);
    assert.equal(sample(delivered, "herald_publications_total"), sample(before, "herald_publications_total") + 3);
    assert.equal(sample(delivered, "herald_deliveries_total"), sample(before, "herald_deliveries_total") + 5);
    assert.equal(sample(delivered, "herald_delivery_latency_seconds_count"), sample(before, "herald_delivery_latency_seconds_count") + 3);
    assert.ok(sample(delivered, "herald_publication_bytes_total") > sample(before, "herald_publication_bytes_total"));

    for (const client of clients) {
      client.socket.close(1000);
      await client.closed;
    }
    await waitForSample(node, "herald_connections", WS, sample(before, "herald_connections", WS));

    const left = await scrape(node.http);
    assert.equal(sample(left, "herald_subscriptions"), sample(before, "herald_subscriptions"));
    assert.equal(sample(left, "herald_channels"), sample(before, "herald_channels"));
    const normal = { transport: "websocket", reason: "normal" };
    assert.equal(sample(left, "herald_connections_closed_total", normal), sample(before, "herald_connections_closed_total", normal) + 3);
  });

  test("unsubscribe lowers the subscription gauge", async () => {
    const before = await scrape(node.http);
    const client = await subscribed(node, "metrics:unsubscribe");
    assert.equal(sample(await scrape(node.http), "herald_subscriptions"), sample(before, "herald_subscriptions") + 1);

    const reply = await client.request({ type: "unsubscribe", channel: "metrics:unsubscribe" });
    assert.equal(reply.type, "reply");
    const after = await scrape(node.http);
    assert.equal(sample(after, "herald_subscriptions"), sample(before, "herald_subscriptions"));
    assert.equal(sample(after, "herald_connections", WS), sample(before, "herald_connections", WS) + 1);
    client.close();
    await client.closed;
  });

  test("registries of two nodes stay apart", async () => {
    const other = await startHerald();
    try {
      const client = await subscribed(node, "metrics:apart");
      assert.equal(sample(await scrape(other.http), "herald_connections", WS), 0);
      assert.equal(sample(await scrape(other.http), "herald_subscriptions"), 0);
      assert.ok(sample(await scrape(node.http), "herald_connections", WS) >= 1);
      client.close();
      await client.closed;
    } finally {
      await other.close();
    }
  });
});

describe("metrics of a slow consumer", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ limits: { outboundBufferBytes: 64 * 1024 } });
  });

  after(async () => {
    await node.close();
  });

  test("slow consumer close is counted", async () => {
    const before = await scrape(node.http);
    const reader = await subscribed(node, "metrics:flood");
    const stalled = await subscribed(node, "metrics:flood");
    // Stop reading on the raw socket: the kernel buffers fill, then the node's outbound buffer.
    const raw = (stalled.socket as unknown as { _socket: Socket })._socket;
    raw.pause();

    const payload = "x".repeat(16 * 1024);
    const items = Array.from({ length: 40 }, (_, i) => ({ channel: "metrics:flood", data: { i, payload } }));
    let batches = 0;
    // Bounded: at most 100 batches of 40 × 16 KiB (64 MiB) before giving up.
    while (sample(await scrape(node.http), "herald_slow_consumer_closes_total", WS) === sample(before, "herald_slow_consumer_closes_total", WS)) {
      assert.ok(batches < 100, "the stalled client was never closed as slow");
      const { status } = await postJson(node.http, "/api/publish_batch", { items });
      assert.equal(status, 200);
      batches++;
    }

    raw.resume();
    const closed = await stalled.closed;
    assert.equal(closed.code, 4008);
    await reader.waitForPubs("metrics:flood", batches * items.length, 20_000);
    await waitForSample(node, "herald_connections", WS, sample(before, "herald_connections", WS) + 1);

    const after = await scrape(node.http);
    const slow = { transport: "websocket", reason: "slow_consumer" };
    assert.equal(sample(after, "herald_slow_consumer_closes_total", WS), sample(before, "herald_slow_consumer_closes_total", WS) + 1);
    assert.equal(sample(after, "herald_connections_closed_total", slow), sample(before, "herald_connections_closed_total", slow) + 1);
    assert.ok(sample(after, "herald_drops_total", slow) > sample(before, "herald_drops_total", slow));
    assert.equal(sample(after, "herald_publications_total"), sample(before, "herald_publications_total") + batches * items.length);
    reader.close();
    await reader.closed;
  });
});

async function sseStream(node: Node, query: string): Promise<SseResponse> {
  const stream = await openSse(`${node.http}/sse?${query}`);
  assert.equal(stream.status, 200, `GET /sse?${query} returned ${stream.status}`);
  await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1, 5_000, "the subscribed event");
  return stream;
}

describe("metrics of sse streams", () => {
  test("counts follow sse streams", async () => {
    // A small outbound limit cuts the paused reader soon; heartbeats are
    // slow enough that no stream is cut as stalled instead.
    const node = await startHerald({ limits: { outboundBufferBytes: 64 * 1024 }, sse: { heartbeatMs: 60_000 } });
    try {
      const before = await scrape(node.http);
      const streams = [
        await sseStream(node, "channel=metrics:sse-a"),
        await sseStream(node, "channel=metrics:sse-a"),
        await sseStream(node, "channel=metrics:sse-a&channel=metrics:sse-b"),
      ];

      const opened = await scrape(node.http);
      assert.equal(sample(opened, "herald_connections", SSE), sample(before, "herald_connections", SSE) + 3);
      assert.equal(sample(opened, "herald_connections_opened_total", SSE), sample(before, "herald_connections_opened_total", SSE) + 3);
      assert.equal(sample(opened, "herald_subscriptions"), sample(before, "herald_subscriptions") + 4);
      assert.equal(sample(opened, "herald_channels"), sample(before, "herald_channels") + 2);

      await publish(node.http, "metrics:sse-a", { n: 1 });
      await publish(node.http, "metrics:sse-a", { n: 2 });
      await publish(node.http, "metrics:sse-b", { n: 3 });
      await streams[0]!.recorder.waitForMessages(2);
      await streams[1]!.recorder.waitForMessages(2);
      await streams[2]!.recorder.waitForMessages(3);
      const delivered = await scrape(node.http);
      assert.equal(sample(delivered, "herald_deliveries_total"), sample(before, "herald_deliveries_total") + 7);

      const rejected = await openSse(`${node.http}/sse?channel=metrics:sse-a&token=not-a-token`);
      assert.equal(rejected.status, 401);
      await rejected.ended;

      // The raw socket stops reading, so the kernel buffers fill, then the node's outbound buffer.
      const paused = await pausedReader(node.port, "/sse?channel=metrics:sse-slow");
      await waitForSample(node, "herald_connections", SSE, sample(before, "herald_connections", SSE) + 4);
      const payload = "x".repeat(32 * 1024);
      let published = 0;
      // Bounded: at most 1,000 publications of 32 KiB before giving up.
      while (sample(await scrape(node.http), "herald_slow_consumer_closes_total", SSE) === sample(before, "herald_slow_consumer_closes_total", SSE)) {
        assert.ok(published < 1_000, "the paused reader was never cut as slow");
        await node.server.hub.publish("metrics:sse-slow", JSON.stringify({ payload }));
        published++;
      }
      paused.destroy();
      await waitForSample(node, "herald_connections", SSE, sample(before, "herald_connections", SSE) + 3);

      for (const stream of streams) {
        stream.close();
        await stream.ended;
      }
      await waitForSample(node, "herald_connections", SSE, sample(before, "herald_connections", SSE));

      const after = await scrape(node.http);
      const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
      assert.equal(delta("herald_connections_opened_total", SSE), 5);
      assert.equal(delta("herald_connections_closed_total", { transport: "sse", reason: "client_closed" }), 3);
      assert.equal(delta("herald_connections_closed_total", { transport: "sse", reason: "slow_consumer" }), 1);
      assert.equal(delta("herald_connections_closed_total", { transport: "sse", reason: "token_invalid" }), 1);
      assert.equal(delta("herald_auth_failures_total", { transport: "sse", code: "token_invalid" }), 1);
      assert.equal(delta("herald_slow_consumer_closes_total", SSE), 1);
      assert.ok(delta("herald_drops_total", { transport: "sse", reason: "slow_consumer" }) >= 1);
      assert.equal(delta("herald_subscriptions"), 0);
      assert.equal(delta("herald_channels"), 0);
      assert.equal(delta("herald_connections", WS), 0);
      assert.equal(delta("herald_publications_total"), 3 + published);
    } finally {
      await node.close();
    }
  });
});

describe("metrics of long-polls", () => {
  test("counts follow held and rejected polls", async () => {
    const node = await startHerald({ poll: { holdMs: 30_000 } });
    try {
      const before = await scrape(node.http);
      const controller = new AbortController();
      const held = fetch(`${node.http}/poll?channel=metrics:poll-a`, { signal: controller.signal }).catch(() => undefined);
      const answered = fetch(`${node.http}/poll?channel=metrics:poll-b`);
      await waitForSample(node, "herald_connections", POLL, sample(before, "herald_connections", POLL) + 2);
      const opened = await scrape(node.http);
      assert.equal(sample(opened, "herald_connections_opened_total", POLL), sample(before, "herald_connections_opened_total", POLL) + 2);

      await waitUntil(() => node.server.hub.channelSubscribers().some((entry) => entry.channel === "metrics:poll-b"), 5_000, "the held poll");
      await publish(node.http, "metrics:poll-b", { n: 1 });
      assert.equal((await answered).status, 200);
      controller.abort();
      await held;
      const rejected = await fetch(`${node.http}/poll?channel=metrics:poll-a&token=not-a-token`);
      assert.equal(rejected.status, 401);
      await waitForSample(node, "herald_connections", POLL, sample(before, "herald_connections", POLL));

      const after = await scrape(node.http);
      const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
      assert.equal(delta("herald_connections_opened_total", POLL), 3);
      assert.equal(delta("herald_connections_closed_total", { transport: "poll", reason: "responded" }), 1);
      assert.equal(delta("herald_connections_closed_total", { transport: "poll", reason: "client_closed" }), 1);
      assert.equal(delta("herald_connections_closed_total", { transport: "poll", reason: "token_invalid" }), 1);
      assert.equal(delta("herald_auth_failures_total", { transport: "poll", code: "token_invalid" }), 1);
    } finally {
      await node.close();
    }
  });
});

describe("metrics of a ping timeout", () => {
  test("ping timeout close has its own reason", async () => {
    const node = await startHerald({ websocket: { pingIntervalMs: 50, missedPongs: 1 } });
    try {
      const client = await TestClient.open(node.ws, { autoPong: false });
      const closed = await client.closed;
      assert.equal(closed.code, 1011);
      const reason = { transport: "websocket", reason: "ping_timeout" };
      await waitForSample(node, "herald_connections_closed_total", reason, 1);
      assert.equal(sample(await scrape(node.http), "herald_connections", WS), 0);
    } finally {
      await node.close();
    }
  });
});

describe("metrics access", () => {
  test("requireAdminToken needs the admin token", async () => {
    const node = await startHerald({ adminToken: "metrics-admin-token", metrics: { requireAdminToken: true } });
    try {
      const anonymous = await fetch(`${node.http}/metrics`);
      assert.equal(anonymous.status, 401);
      assert.equal(((await anonymous.json()) as any).error.code, "unauthorized");
      const wrong = await fetch(`${node.http}/metrics`, { headers: { Authorization: "Bearer nope" } });
      assert.equal(wrong.status, 401);
      const samples = await scrape(node.http, { Authorization: "Bearer metrics-admin-token" });
      assert.equal(sample(samples, "herald_auth_failures_total", { transport: "admin", code: "unauthorized" }), 1);
    } finally {
      await node.close();
    }
  });

  test("requireAdminToken without a token fails", () => {
    const config = loadConfig({ env: {}, overrides: { metrics: { requireAdminToken: true }, log: { level: "silent" } } });
    assert.throws(() => new HeraldServer(config), ConfigError);
  });

  test("disabled metrics answer 404", async () => {
    const node = await startHerald({ metrics: { enabled: false } });
    try {
      const response = await fetch(`${node.http}/metrics`);
      assert.equal(response.status, 404);
      assert.equal(((await response.json()) as any).error.code, "not_found");
    } finally {
      await node.close();
    }
  });
});
