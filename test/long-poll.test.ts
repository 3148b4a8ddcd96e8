import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { Agent, request } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { AnonymousAuthenticator } from "../src/auth/identity.js";
import { encodeCursor } from "../src/cursor.js";
import { LogLimiter } from "../src/log-limiter.js";
import { ConnectionLimiter } from "../src/limits/connection-limiter.js";
import type { TransportContext } from "../src/transports/transport.js";
import { LongPollTransport } from "../src/transports/long-poll.js";
import type { NodeState } from "../src/transports/transport.js";
import { postJson, publish, startHerald } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

interface PollBody {
  events: Array<{ channel: string; offset: number; data: unknown }>;
  cursor: string;
  gaps: Array<{ channel: string; epoch: string; offset: number }>;
}

async function poll(base: string, query: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${base}/poll?${query}`, init);
  return { status: response.status, body: await response.json(), headers: response.headers };
}

function channelQuery(channels: string[], cursor?: string, extra = ""): string {
  const params = new URLSearchParams();
  for (const channel of channels) {
    params.append("channel", channel);
  }
  if (cursor !== undefined) {
    params.set("cursor", cursor);
  }
  return params.toString() + extra;
}

describe("long-poll", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ poll: { holdMs: 2_000 }, namespaces: { race: { historySize: 100_000 } } });
  });

  after(async () => {
    await node.close();
  });

  test("poll without cursor waits for next event", async () => {
    await publish(node.http, "fresh", { before: true });
    const pending = poll(node.http, channelQuery(["fresh"]));
    await waitUntil(() => node.server.hub.subscriptionCount === 1, 5_000, "the poll to be held");
    await publish(node.http, "fresh", { n: 2 });
    const { status, body } = await pending;
    assert.equal(status, 200);
    assert.deepEqual(body.events, [{ channel: "fresh", offset: 2, data: { n: 2 } }]);
    assert.deepEqual(body.gaps, []);
    assert.equal(typeof body.cursor, "string");
  });

  test("cursor returns history at once", async () => {
    const first = await publish(node.http, "history", 1);
    await publish(node.http, "history", 2);
    await publish(node.http, "history", 3);
    const cursor = encodeCursor(["history"], new Map([["history", { epoch: first.epoch, offset: 1 }]]));
    const { status, body } = await poll(node.http, channelQuery(["history"], cursor));
    assert.equal(status, 200);
    assert.deepEqual(
      body.events.map((event: any) => event.offset),
      [2, 3],
    );
    const next = encodeCursor(["history"], new Map([["history", { epoch: first.epoch, offset: 3 }]]));
    assert.equal(body.cursor, next);
  });

  test("timeout returns empty batch and same cursor", async () => {
    const { epoch } = await publish(node.http, "quiet", 1);
    const cursor = encodeCursor(["quiet"], new Map([["quiet", { epoch, offset: 1 }]]));
    const { status, body } = await poll(node.http, channelQuery(["quiet"], cursor, "&timeout=150"));
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.deepEqual(body.gaps, []);
    assert.equal(body.cursor, cursor);
  });

  test("timeout=0 without cursor returns the current top", async () => {
    const { epoch, offset } = await publish(node.http, "top", "x");
    const { body } = await poll(node.http, channelQuery(["top"], undefined, "&timeout=0"));
    assert.deepEqual(body.events, []);
    assert.equal(body.cursor, encodeCursor(["top"], new Map([["top", { epoch, offset }]])));
  });

  test("batch limit splits a backlog", async () => {
    const limited = await startHerald({ poll: { batchLimit: 3 } });
    try {
      let epoch = "";
      for (let i = 1; i <= 7; i++) {
        epoch = (await publish(limited.http, "backlog", i)).epoch;
      }
      let cursor = encodeCursor(["backlog"], new Map([["backlog", { epoch, offset: 0 }]]));
      const batches: number[][] = [];
      for (let i = 0; i < 3; i++) {
        const { body } = await poll(limited.http, channelQuery(["backlog"], cursor));
        batches.push(body.events.map((event: any) => event.offset));
        cursor = body.cursor;
      }
      assert.deepEqual(batches, [[1, 2, 3], [4, 5, 6], [7]]);
    } finally {
      await limited.close();
    }
  });

  test("several channels in one poll", async () => {
    const a = await publish(node.http, "multi-a", "a1");
    const b = await publish(node.http, "multi-b", "b1");
    const positions = new Map([
      ["multi-a", { epoch: a.epoch, offset: 1 }],
      ["multi-b", { epoch: b.epoch, offset: 0 }],
    ]);
    const cursor = encodeCursor(["multi-a", "multi-b"], positions);
    const { body } = await poll(node.http, channelQuery(["multi-b", "multi-a"], cursor));
    assert.deepEqual(body.events, [{ channel: "multi-b", offset: 1, data: "b1" }]);

    const held = poll(node.http, channelQuery(["multi-a", "multi-b"], body.cursor));
    await waitUntil(() => node.server.hub.subscriptionCount === 2, 5_000, "the poll to be held");
    await publish(node.http, "multi-a", "a2");
    const second = await held;
    assert.deepEqual(second.body.events, [{ channel: "multi-a", offset: 2, data: "a2" }]);
  });

  test("unknown epoch reports a gap", async () => {
    const { offset } = await publish(node.http, "lost", 1);
    await publish(node.http, "lost", 2);
    const cursor = encodeCursor(["lost"], new Map([["lost", { epoch: "zzzzzz", offset }]]));
    const { status, body } = await poll(node.http, channelQuery(["lost"], cursor));
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.equal(body.gaps.length, 1);
    assert.equal(body.gaps[0].channel, "lost");
    assert.equal(body.gaps[0].offset, 2);
    assert.notEqual(body.gaps[0].epoch, "zzzzzz");
  });

  test("invalid requests get stable codes", async () => {
    const cases: Array<[string, number, string]> = [
      ["", 400, "missing_channel"],
      ["channel=a%20b", 400, "invalid_channel"],
      ["channel=a&cursor=garbage", 400, "invalid_cursor"],
      [`channel=a&cursor=${encodeCursor(["b"], new Map([["b", { epoch: "abc", offset: 1 }]]))}`, 400, "invalid_cursor"],
      ["channel=a&timeout=soon", 400, "bad_request"],
      [Array.from({ length: 129 }, (_, i) => `channel=c${i}`).join("&"), 400, "too_many_channels"],
    ];
    for (const [query, status, code] of cases) {
      const response = await poll(node.http, query);
      assert.equal(response.status, status, query);
      assert.equal(response.body.error.code, code, query);
    }
  });

  test("offset beyond top is invalid_position", async () => {
    const { epoch } = await publish(node.http, "ahead", 1);
    const cursor = encodeCursor(["ahead"], new Map([["ahead", { epoch, offset: 9 }]]));
    const { status, body } = await poll(node.http, channelQuery(["ahead"], cursor));
    assert.equal(status, 400);
    assert.equal(body.error.code, "invalid_position");
  });

  test("aborted poll frees its subscription", async () => {
    const controller = new AbortController();
    const pending = poll(node.http, channelQuery(["abort"]), { signal: controller.signal }).catch((error: Error) => error);
    await waitUntil(() => node.server.hub.subscriptionCount === 1, 5_000, "the poll to be held");
    controller.abort();
    const outcome = await pending;
    assert.ok(outcome instanceof Error);
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the subscription to end");
  });

  test("thousands of held polls", async () => {
    // A node of its own keeps polls open long enough for all of them to start, even on a loaded machine.
    const crowded = await startHerald({ poll: { holdMs: 120_000 } });
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      const count = 2_000;
      const responses: Array<Promise<PollBody>> = [];
      for (let i = 0; i < count; i++) {
        responses.push(
          new Promise((resolve, reject) => {
            const req = request(`${crowded.http}/poll?channel=crowd`, { agent }, (res) => {
              let text = "";
              res.on("data", (chunk: Buffer) => (text += chunk.toString()));
              res.on("end", () => resolve(JSON.parse(text) as PollBody));
            });
            req.on("error", reject);
            req.end();
          }),
        );
      }
      await waitUntil(() => crowded.server.hub.subscriptionCount === count, 20_000, `${count} held polls`);
      await publish(crowded.http, "crowd", "all");
      const bodies = await Promise.all(responses);
      assert.equal(bodies.length, count);
      for (const body of bodies) {
        assert.deepEqual(body.events, [{ channel: "crowd", offset: 1, data: "all" }]);
      }
      await waitUntil(() => crowded.server.hub.subscriptionCount === 0, 5_000, "every subscription to end");
    } finally {
      agent.destroy();
      await crowded.close();
    }
  });

  test("race: every offset exactly once", async () => {
    const total = 20_000;
    const batchSize = 50;
    const publishers = 4;
    let sent = 0;
    const publishAll = async () => {
      while (sent < total) {
        const items = [];
        for (let i = 0; i < batchSize && sent < total; i++, sent++) {
          items.push({ channel: "race:one", data: { n: sent } });
        }
        const { status } = await postJson(node.http, "/api/publish_batch", { items });
        assert.equal(status, 200);
      }
    };

    const first = await poll(node.http, channelQuery(["race:one"], undefined, "&timeout=0"));
    let cursor: string = first.body.cursor;
    const publishing = Promise.all(Array.from({ length: publishers }, publishAll));

    const offsets: number[] = [];
    let polls = 0;
    const deadline = Date.now() + 120_000;
    while (offsets.length < total && Date.now() < deadline) {
      const { status, body } = await poll(node.http, channelQuery(["race:one"], cursor));
      assert.equal(status, 200);
      assert.deepEqual(body.gaps, []);
      for (const event of body.events) {
        offsets.push(event.offset);
      }
      cursor = body.cursor;
      polls++;
    }
    await publishing;

    assert.equal(offsets.length, total);
    for (let i = 0; i < total; i++) {
      if (offsets[i] !== i + 1) {
        assert.fail(`event ${i} has offset ${offsets[i]}; expected ${i + 1}`);
      }
    }
    assert.ok(polls > 1, "the client polled more than once");
  });
});

describe("long-poll drain", () => {
  let node: Node;
  let state: NodeState = "running";
  let http: Server;
  let base: string;
  let transport: LongPollTransport;

  before(async () => {
    node = await startHerald({ poll: { holdMs: 10_000 } });
    transport = new LongPollTransport({
      config: node.server.config,
      hub: node.server.hub,
      log: node.server.log,
      auth: new AnonymousAuthenticator(),
      nodeId: "drain-test",
      limiter: new ConnectionLimiter(1_000),
      events: node.server.events,
      logLimiter: new LogLimiter(node.server.log),
      state: () => state,
    } as unknown as TransportContext);
    http = createServer((req, res) => transport.handleRequest(req, res, new URL(req.url ?? "/", "http://localhost")));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });

  after(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
    await node.close();
  });

  test("drain answers held and new polls at once", async () => {
    const { epoch } = await publish(node.http, "leaving", 1);
    const cursor = encodeCursor(["leaving"], new Map([["leaving", { epoch, offset: 1 }]]));
    const held = poll(base, channelQuery(["leaving"], cursor));
    await waitUntil(() => transport.connectionCount() === 1 && node.server.hub.subscriptionCount === 1, 5_000, "a held poll");

    state = "draining";
    // Held polls would wait holdMs (10 s); the signal fails the test well before that.
    const bounded = { signal: AbortSignal.timeout(5_000) };
    const drained = transport.drain();
    const { status, body, headers } = await held;
    await drained;
    assert.equal(status, 200);
    assert.deepEqual(body.events, []);
    assert.equal(body.cursor, cursor);
    assert.equal(headers.get("retry-after"), "1");

    const fresh = await poll(base, channelQuery(["leaving"], cursor), bounded);
    assert.equal(fresh.status, 200);
    assert.deepEqual(fresh.body.events, []);
    assert.equal(fresh.body.cursor, cursor);
    await publish(node.http, "leaving", 2);
    const withEvent = await poll(base, channelQuery(["leaving"], cursor), bounded);
    assert.deepEqual(withEvent.body.events, [{ channel: "leaving", offset: 2, data: 2 }]);
    assert.equal(transport.connectionCount(), 0);
    assert.equal(node.server.hub.subscriptionCount, 0);
  });
});
