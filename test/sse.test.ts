import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { EventSource } from "eventsource";
import { AnonymousAuthenticator } from "../src/auth/identity.js";
import { encodeCursor } from "../src/cursor.js";
import { createLogger } from "../src/log.js";
import { SseTransport } from "../src/transports/sse.js";
import { publish, startHerald } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";
import { openSse, pausedReader } from "./support/sse.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Publishes in-process, so cutting every TCP connection of the node never hits a publish. */
function publishDirect(node: Node, channel: string, data: unknown) {
  return node.server.hub.publish(channel, JSON.stringify(data));
}

function cutAllConnections(node: Node): number {
  const sockets = [...node.server.listener.sockets];
  for (const socket of sockets) {
    socket.destroy();
  }
  return sockets.length;
}

describe("sse", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({
      sse: { retryMs: 100 },
      cors: { allowedOrigins: ["*"] },
      limits: { maxChannelsPerConnection: 4 },
      namespaces: { race: { historySize: 1_000 } },
    });
  });

  after(async () => {
    await node.close();
  });

  test("stream starts with retry and subscribed", async () => {
    await publish(node.http, "start", { n: 1 });
    const stream = await openSse(`${node.http}/sse?channel=start`);
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["content-type"], "text/event-stream");
    assert.equal(stream.headers["cache-control"], "no-cache");
    assert.equal(stream.headers["x-accel-buffering"], "no");
    assert.equal(stream.headers["content-encoding"], undefined);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    assert.ok(stream.recorder.text.startsWith("retry: 100\n"), stream.recorder.text);
    assert.equal(stream.recorder.retries[0], 100);

    const subscribed = stream.recorder.named("subscribed")[0]!;
    const state = JSON.parse(subscribed.data);
    assert.equal(state.channels.length, 1);
    assert.equal(state.channels[0].channel, "start");
    assert.equal(state.channels[0].offset, 1);
    assert.equal(state.channels[0].recovered, true);
    assert.equal(subscribed.id, encodeCursor(["start"], new Map([["start", { epoch: state.channels[0].epoch, offset: 1 }]])));

    await publish(node.http, "start", { n: 2 });
    await stream.recorder.waitForMessages(1);
    const [message] = stream.recorder.messages();
    assert.deepEqual({ ...message, id: undefined }, { id: undefined, channel: "start", offset: 2, data: { n: 2 } });
    assert.equal(message!.id, encodeCursor(["start"], new Map([["start", { epoch: state.channels[0].epoch, offset: 2 }]])));
    stream.close();
  });

  test("eventsource client resumes after the server cuts", async () => {
    const source = new EventSource(`${node.http}/sse?channel=ra&channel=rb`, { fetch });
    const received: Array<{ id: string; channel: string; offset: number; data: unknown }> = [];
    const subscribed: any[] = [];
    source.addEventListener("message", (event) => received.push({ id: event.lastEventId, ...JSON.parse(event.data) }));
    source.addEventListener("subscribed", (event) => subscribed.push(JSON.parse(event.data)));
    try {
      await waitUntil(() => subscribed.length === 1, 10_000, "the subscribed event");
      for (let i = 1; i <= 3; i++) {
        await publishDirect(node, "ra", { i });
        await publishDirect(node, "rb", { i });
      }
      await waitUntil(() => received.length === 6, 10_000, "6 events");

      assert.ok(cutAllConnections(node) >= 1);
      await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the subscriptions to be released");
      for (let i = 4; i <= 13; i++) {
        await publishDirect(node, "ra", { i });
        await publishDirect(node, "rb", { i });
      }
      await waitUntil(() => received.length >= 26, 10_000, "26 events");
      await new Promise((resolve) => setTimeout(resolve, 200));

      assert.equal(received.length, 26);
      assert.equal(subscribed.length, 2);
      assert.deepEqual(
        subscribed[1].channels.map((entry: any) => [entry.channel, entry.offset, entry.recovered]),
        [["ra", 3, true], ["rb", 3, true]],
      );
      const after = received.slice(6);
      for (const channel of ["ra", "rb"]) {
        const events = after.filter((event) => event.channel === channel);
        assert.deepEqual(events.map((event) => event.offset), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13], channel);
        assert.deepEqual(events.map((event) => event.data), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((i) => ({ i })), channel);
      }
    } finally {
      source.close();
    }
  });

  test("events during replay are sent once", async () => {
    const first = await publishDirect(node, "race:main", { i: 1 });
    const cursor = encodeCursor(["race:main", "race:quiet"], new Map([
      ["race:main", { epoch: first.epoch, offset: 1 }],
      ["race:quiet", { epoch: (await publishDirect(node, "race:quiet", 0)).epoch, offset: 1 }],
    ]));
    const last = 400;
    const publishing = (async () => {
      for (let i = 2; i <= last; i++) {
        await publishDirect(node, "race:main", { i });
        if (i % 10 === 0) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    })();
    let published = false;
    void publishing.then(() => {
      published = true;
    });
    const streams = [];
    let openedWhilePublishing = 0;
    for (let k = 0; k < 10; k++) {
      streams.push(await openSse(`${node.http}/sse?channel=race:main&channel=race:quiet`, { "Last-Event-ID": cursor }));
      openedWhilePublishing += published ? 0 : 1;
    }
    await publishing;
    assert.ok(openedWhilePublishing >= 2, `${openedWhilePublishing} streams opened while publishing`);
    const expected = Array.from({ length: last - 1 }, (_, i) => i + 2);
    for (const stream of streams) {
      await stream.recorder.waitForMessages(expected.length);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(stream.recorder.messages().map((message) => message.offset), expected);
      stream.close();
    }
  });

  test("payloads arrive unchanged", async () => {
    const payloads: unknown[] = [
      "line\nbreak",
      "crlf\r\nline",
      "lone\rreturn",
      "separators\u2028and\u2029",
      "emoji 🎉 👩‍👩‍👧 ✓",
      "nul\u0000inside",
      { nested: ["a\nb", "\r", { deep: "\u0000\u001f" }] },
      "",
      0,
      null,
    ];
    const stream = await openSse(`${node.http}/sse?channel=payloads`);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    for (const data of payloads) {
      await publish(node.http, "payloads", data);
    }
    await stream.recorder.waitForMessages(payloads.length);
    assert.deepEqual(
      stream.recorder.messages().map((message) => message.data),
      payloads,
    );
    assert.ok(!stream.recorder.text.includes("\r"), "no CR on the wire");
    assert.notEqual(stream.recorder.text.charCodeAt(0), 0xfeff, "no byte order mark");
    stream.close();
  });

  test("bad requests get JSON errors", async () => {
    const beside = await openSse(`${node.http}/sse?channel=beside`);
    await beside.recorder.waitFor(() => beside.recorder.named("subscribed").length === 1);

    await publish(node.http, "cur", { n: 1 });
    const good = encodeCursor(["cur"], new Map([["cur", { epoch: (await publish(node.http, "cur", { n: 2 })).epoch, offset: 1 }]]));
    const forged = good.replace(/-1\./, "-2.");
    assert.notEqual(forged, good);

    const cases: Array<{ name: string; path: string; headers?: Record<string, string>; code: string }> = [
      { name: "no channel", path: "/sse", code: "missing_channel" },
      { name: "too many channels", path: "/sse?channel=a&channel=b&channel=c&channel=d&channel=e", code: "too_many_channels" },
      { name: "invalid channel", path: "/sse?channel=bad%20name!", code: "invalid_channel" },
      { name: "repeated channel", path: "/sse?channel=a&channel=a", code: "invalid_channel" },
      { name: "malformed cursor", path: "/sse?channel=cur", headers: { "Last-Event-ID": "hello" }, code: "invalid_cursor" },
      { name: "truncated cursor", path: "/sse?channel=cur", headers: { "Last-Event-ID": good.slice(0, -2) }, code: "invalid_cursor" },
      { name: "forged cursor", path: "/sse?channel=cur", headers: { "Last-Event-ID": forged }, code: "invalid_cursor" },
      { name: "cursor of other channels", path: "/sse?channel=cur&channel=x", headers: { "Last-Event-ID": good }, code: "invalid_cursor" },
      { name: "oversized cursor", path: "/sse?channel=cur", headers: { "Last-Event-ID": `1.${"a".repeat(5000)}` }, code: "invalid_cursor" },
      { name: "oversized query cursor", path: `/sse?channel=cur&lastEventId=1.${"b".repeat(5000)}`, code: "invalid_cursor" },
      { name: "bad method", path: "/sse?channel=cur", code: "method_not_allowed" },
    ];
    for (const item of cases) {
      const response = await fetch(node.http + item.path, {
        method: item.name === "bad method" ? "POST" : "GET",
        headers: item.headers ?? {},
      });
      assert.equal(response.status, item.code === "method_not_allowed" ? 405 : 400, item.name);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/, item.name);
      const body = (await response.json()) as any;
      assert.equal(body.error.code, item.code, item.name);
      assert.equal(typeof body.error.message, "string", item.name);
    }

    await publish(node.http, "beside", { still: true });
    await beside.recorder.waitForMessages(1);
    assert.deepEqual(beside.recorder.messages()[0]!.data, { still: true });
    beside.close();
  });

  test("wrong epoch opens with a gap", async () => {
    const { epoch } = await publish(node.http, "epoch", { n: 1 });
    await publish(node.http, "epoch", { n: 2 });
    const stale = encodeCursor(["epoch"], new Map([["epoch", { epoch: "old0", offset: 7 }]]));
    const stream = await openSse(`${node.http}/sse?channel=epoch`, { "Last-Event-ID": stale });
    assert.equal(stream.status, 200);
    await stream.recorder.waitFor(() => stream.recorder.named("gap").length === 1);

    const subscribed = stream.recorder.named("subscribed")[0]!;
    assert.equal(subscribed.id, stale);
    assert.deepEqual(JSON.parse(subscribed.data).channels, [{ channel: "epoch", epoch, offset: 2, recovered: false }]);
    const gap = stream.recorder.named("gap")[0]!;
    assert.deepEqual(JSON.parse(gap.data), { channel: "epoch", epoch, offset: 2 });
    assert.equal(gap.id, encodeCursor(["epoch"], new Map([["epoch", { epoch, offset: 2 }]])));

    await publish(node.http, "epoch", { n: 3 });
    await stream.recorder.waitForMessages(1);
    assert.deepEqual(stream.recorder.messages().map((message) => message.offset), [3]);
    stream.close();
  });

  test("query cursor resumes when no header is sent", async () => {
    const first = await publish(node.http, "query", { n: 1 });
    await publish(node.http, "query", { n: 2 });
    await publish(node.http, "query", { n: 3 });
    const cursor = encodeCursor(["query"], new Map([["query", { epoch: first.epoch, offset: 1 }]]));
    const stream = await openSse(`${node.http}/sse?channel=query&lastEventId=${cursor}`);
    await stream.recorder.waitForMessages(2);
    assert.deepEqual(stream.recorder.messages().map((message) => message.offset), [2, 3]);
    stream.close();
  });

  test("preflight allows the resume header", async () => {
    const response = await fetch(`${node.http}/sse?channel=x`, { method: "OPTIONS" });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    assert.match(response.headers.get("access-control-allow-headers") ?? "", /Last-Event-ID/);
  });

  test("closed streams release everything", async () => {
    const count = 1_000;
    const batch = 50;
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "earlier subscriptions to end");
    const handlesBefore = (process as any)._getActiveHandles().length as number;
    for (let opened = 0; opened < count; opened += batch) {
      const streams = await Promise.all(
        Array.from({ length: batch }, (_, i) => openSse(`${node.http}/sse?channel=churn${i % 7}&channel=churn-all`)),
      );
      await Promise.all(
        streams.map((stream) => stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1)),
      );
      assert.equal(node.server.hub.subscriptionCount, batch * 2);
      for (const stream of streams) {
        stream.close();
      }
      await Promise.all(streams.map((stream) => stream.ended));
    }
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "subscriptions to be released");
    await waitUntil(() => node.server.hub.channelCount === 0, 5_000, "channels to be released");
    await waitUntil(
      () => (process as any)._getActiveHandles().length <= handlesBefore,
      5_000,
      "open handles to return to their count before",
    );
    await waitUntil(() => node.server.listener.sockets.size === 0, 5_000, "server sockets to close");
  });
});

describe("sse flow control", () => {
  test("slow reader is cut at the outbound limit", async () => {
    const node = await startHerald({ limits: { outboundBufferBytes: 64 * 1024 }, sse: { heartbeatMs: 60_000 } });
    try {
      const socket = await pausedReader(node.port, "/sse?channel=slow");
      await waitUntil(() => node.server.hub.subscriptionCount === 1, 5_000, "the subscription");
      const big = "x".repeat(32 * 1024);
      for (let i = 0; i < 1_000 && node.server.hub.subscriptionCount > 0; i++) {
        await publishDirect(node, "slow", big);
      }
      await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the slow reader to be cut");
      socket.destroy();
    } finally {
      await node.close();
    }
  });

  test("reader that stops is cut after heartbeats", async () => {
    const node = await startHerald({ limits: { outboundBufferBytes: 256 * 1024 * 1024 }, sse: { heartbeatMs: 100 } });
    try {
      const socket = await pausedReader(node.port, "/sse?channel=stall");
      await waitUntil(() => node.server.hub.subscriptionCount === 1, 5_000, "the subscription");
      // Enough to fill the loopback socket buffers, so the rest stays in Node.
      const big = "y".repeat(64 * 1024);
      for (let i = 0; i < 600 && node.server.hub.subscriptionCount > 0; i++) {
        await publishDirect(node, "stall", big);
      }
      await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the stalled reader to be cut");
      const samples = await scrape(node.http);
      assert.equal(sample(samples, "herald_connections_closed_total", { transport: "sse", reason: "stalled" }), 1);
      assert.equal(sample(samples, "herald_slow_consumer_closes_total", { transport: "sse" }), 0);
      socket.destroy();
    } finally {
      await node.close();
    }
  });
});

describe("sse drain", () => {
  test("drain sends a jittered retry and ends streams", async () => {
    const node = await startHerald({ sse: { retryMs: 1_000 } });
    const stream = await openSse(`${node.http}/sse?channel=drain`);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    await node.close();
    await stream.ended;
    assert.equal(stream.recorder.retries.length, 2);
    const last = stream.recorder.retries[1]!;
    assert.ok(last >= 1_000, `retry ${last} is at least retryMs`);
    assert.ok(last <= 5_000, `retry ${last} is at most five times retryMs`);
  });

  test("request while draining gets 200 and retry", async () => {
    const node = await startHerald({ sse: { retryMs: 500 } });
    const transport = new SseTransport({
      config: node.server.config,
      hub: node.server.hub,
      log: createLogger("silent"),
      auth: new AnonymousAuthenticator(),
      nodeId: "draining-node",
      state: () => "draining",
    });
    const server = createServer((req, res) => transport.handleRequest(req, res, new URL(req.url ?? "/", "http://herald.invalid")));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const stream = await openSse(`http://127.0.0.1:${port}/sse?channel=late`);
      await stream.ended;
      assert.equal(stream.status, 200);
      assert.equal(stream.headers["content-type"], "text/event-stream");
      assert.equal(stream.recorder.retries.length, 1);
      assert.ok(stream.recorder.retries[0]! >= 500);
      assert.ok(stream.recorder.retries[0]! <= 2_500);
      assert.equal(stream.recorder.events.length, 0);
      assert.equal(node.server.hub.subscriptionCount, 0);
    } finally {
      transport.destroy();
      await new Promise((resolve) => server.close(resolve));
      await node.close();
    }
  });
});

describe("sse authentication", () => {
  /** Records each token and returns the anonymous identity after a delay, as a JWKS fetch would. */
  class SlowAuthenticator {
    readonly enabled = false;
    readonly tokens: Array<string | undefined> = [];
    async authenticate(token: string | undefined) {
      this.tokens.push(token);
      await new Promise((resolve) => setTimeout(resolve, 100));
      return new AnonymousAuthenticator().authenticate(undefined);
    }
  }

  test("token comes from header or query", async () => {
    const auth = new SlowAuthenticator();
    const node = await startHerald({}, { authenticator: auth });
    try {
      const byHeader = await openSse(`${node.http}/sse?channel=t`, { Authorization: "Bearer header-token" });
      const byQuery = await openSse(`${node.http}/sse?channel=t&token=query-token`);
      const without = await openSse(`${node.http}/sse?channel=t`);
      for (const stream of [byHeader, byQuery, without]) {
        await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
        stream.close();
      }
      assert.deepEqual(auth.tokens, ["header-token", "query-token", undefined]);
    } finally {
      await node.close();
    }
  });

  test("client leaving during the token check is released", async () => {
    const auth = new SlowAuthenticator();
    const node = await startHerald({}, { authenticator: auth });
    try {
      const socket = connect(node.port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write("GET /sse?channel=leaver HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await waitUntil(() => auth.tokens.length === 1, 5_000, "the token check to start");
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(node.server.hub.subscriptionCount, 0);
      assert.equal(node.server.hub.channelCount, 0);
    } finally {
      await node.close();
    }
  });
});
