import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { EventSource } from "eventsource";
import { WebSocket } from "ws";
import { HeraldClient, type ClientState, type HeraldClientOptions, type TransportName } from "../src/client/index.js";
import type { HeraldClientError } from "../src/client/index.js";
import { publishWithKey } from "./support/auth-probes.js";
import { startHerald } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { HMAC_SECRET, signToken } from "./support/tokens.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Returns whether the node serves SSE; the SDK's SSE path is tested only where it does. */
async function servesSse(node: Node): Promise<boolean> {
  const controller = new AbortController();
  const response = await fetch(`${node.http}/sse?channel=probe`, { signal: controller.signal });
  controller.abort();
  return response.status !== 404;
}

/** Tracks the node's server-side sockets so a test can cut every connection. */
function trackSockets(node: Node): Set<Socket> {
  // The node's HTTP server is private: the test reaches in for the sockets
  // it accepts, from a listener that tracks them or from the server itself.
  const internals = node.server as unknown as { http?: Server; listener?: { sockets?: Set<Socket> } };
  if (internals.listener?.sockets) {
    return internals.listener.sockets;
  }
  const sockets = new Set<Socket>();
  internals.http!.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return sockets;
}

function newClient(node: Node, transports: TransportName[], extra: Partial<HeraldClientOptions> = {}): HeraldClient {
  return new HeraldClient({
    url: node.http,
    transports,
    minDelayMs: 20,
    maxDelayMs: 200,
    connectTimeoutMs: 3_000,
    WebSocket: WebSocket as never,
    EventSource: EventSource as never,
    ...extra,
  });
}

function recordStates(client: HeraldClient): ClientState[] {
  const states: ClientState[] = [];
  client.on("state", (change) => states.push(change.state));
  return states;
}

describe("client SDK against a live node", () => {
  let node: Node;
  let sockets: Set<Socket>;
  const transports: TransportName[] = ["websocket", "poll"];

  before(async () => {
    node = await startHerald({ poll: { holdMs: 5_000 }, namespaces: { chat: { clientPublish: true }, cut: { historySize: 10_000 } } });
    sockets = trackSockets(node);
    if (await servesSse(node)) {
      transports.push("sse");
    }
  });

  after(async () => {
    await node.close();
  });

  for (const transport of ["websocket", "poll", "sse"] as const) {
    test(`${transport}: cut sockets lose and repeat nothing`, async (t) => {
      if (!transports.includes(transport)) {
        t.skip("this node has no SSE transport");
        return;
      }
      // A large history keeps a slow reconnect recoverable, so any loss is the client's.
      const channel = `cut:${transport}`;
      const client = newClient(node, [transport]);
      const states = recordStates(client);
      const offsets: number[] = [];
      const gaps: unknown[] = [];
      client.on("gap", (gap) => gaps.push(gap));
      client.subscribe(channel, (_data, context) => offsets.push(context.offset));
      await waitUntil(() => client.state === "connected", 10_000, `${transport} to connect`);
      // Events count from the subscription's start, which the position marks.
      await waitUntil(() => client.position(channel) !== undefined, 10_000, "a position");

      const total = 600;
      let cuts = 0;
      for (let i = 1; i <= total; i++) {
        await node.server.hub.publish(channel, JSON.stringify({ i }));
        if (i % 10 === 0) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        if (i % 120 === 0) {
          for (const socket of sockets) {
            socket.destroy();
          }
          cuts++;
        }
      }
      await waitUntil(() => offsets.length >= total, 30_000, `${total} events over ${transport}`);
      client.close();

      assert.equal(cuts, 5);
      assert.ok(states.includes("disconnected"), "the client saw a disconnect");
      assert.deepEqual(gaps, []);
      assert.equal(offsets.length, total);
      for (let i = 0; i < total; i++) {
        if (offsets[i] !== i + 1) {
          assert.fail(`event ${i} has offset ${offsets[i]}; expected ${i + 1}`);
        }
      }
    });
  }

  for (const transport of ["websocket", "poll", "sse"] as const) {
    test(`${transport}: publish and receive`, async (t) => {
      if (!transports.includes(transport)) {
        t.skip("this node has no SSE transport");
        return;
      }
      const channel = `chat:${transport}`;
      const client = newClient(node, [transport]);
      const received: unknown[] = [];
      client.subscribe(channel, (data) => received.push(data));
      await waitUntil(() => client.state === "connected", 10_000, `${transport} to connect`);
      // A poll transport is connected before it has subscribed; wait until it has a position.
      await waitUntil(() => client.position(channel) !== undefined, 10_000, "a position");
      const result = await client.publish(channel, { text: "hello" });
      assert.equal(result.channel, channel);
      await waitUntil(() => received.length === 1, 10_000, "the published event");
      assert.deepEqual(received, [{ text: "hello" }]);
      client.close();
    });
  }

  for (const transport of ["websocket", "poll", "sse"] as const) {
    test(`${transport}: channel changes keep streams exact`, async (t) => {
      if (!transports.includes(transport)) {
        t.skip("this node has no SSE transport");
        return;
      }
      const [a, b, c] = ["a", "b", "c"].map((name) => `join-${transport}-${name}`) as [string, string, string];
      const client = newClient(node, [transport]);
      const received = new Map<string, number[]>([[a, []], [b, []], [c, []]]);
      const record = (_data: unknown, context: { channel: string; offset: number }) => received.get(context.channel)!.push(context.offset);
      client.subscribe(a, record);
      await waitUntil(() => client.position(a) !== undefined, 10_000, `${a} position`);

      const total = 300;
      let subscriptionB: { unsubscribe(): void } | undefined;
      for (let i = 1; i <= total; i++) {
        await node.server.hub.publish(a, String(i));
        if (i === 50) {
          subscriptionB = client.subscribe(b, record);
        }
        if (i === 120) {
          client.subscribe(c, record);
        }
        if (i === 200) {
          subscriptionB!.unsubscribe();
        }
        if (i % 10 === 0) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
      await waitUntil(() => client.position(c) !== undefined, 10_000, `${c} position`);
      await node.server.hub.publish(c, "1");
      await waitUntil(() => received.get(a)!.length >= total && received.get(c)!.length >= 1, 20_000, "every event");
      client.close();

      assert.deepEqual(received.get(a), Array.from({ length: total }, (_, i) => i + 1));
      assert.deepEqual(received.get(b), []);
      assert.equal(received.get(c)!.length, 1);
    });
  }

  test("unsubscribe stops the handler", async () => {
    const client = newClient(node, ["websocket"]);
    const received: unknown[] = [];
    const subscription = client.subscribe("leave", (data) => received.push(data));
    await waitUntil(() => client.position("leave") !== undefined, 10_000, "a position");
    await node.server.hub.publish("leave", "1");
    await waitUntil(() => received.length === 1, 10_000, "the first event");
    subscription.unsubscribe();
    await waitUntil(() => node.server.hub.channelSubscribers().every((entry) => entry.channel !== "leave"), 10_000, "the server-side unsubscribe");
    await node.server.hub.publish("leave", "2");
    assert.deepEqual(received, [1]);
    client.close();
  });

  for (const transport of ["websocket", "poll"] as const) {
    test(`${transport}: rejected token stops reconnecting`, async () => {
      const client = newClient(node, [transport], { token: "not-a-valid-token" });
      const errors: HeraldClientError[] = [];
      client.on("error", (error) => errors.push(error));
      const states = recordStates(client);
      client.subscribe("secret", () => undefined);
      await waitUntil(() => client.state === "closed", 10_000, "the client to close");
      assert.equal(errors[0]?.code, "token_invalid");
      // The client starts as "connecting"; a retry would add "disconnected" and "connecting".
      assert.deepEqual(states, ["closed"]);
    });
  }
});

describe("client SDK fallback", () => {
  test("refused WebSocket falls back", async () => {
    const node = await startHerald({ websocket: { enabled: false } });
    try {
      const expected = (await servesSse(node)) ? "sse" : "poll";
      const client = newClient(node, ["websocket", "sse", "poll"]);
      const used: TransportName[] = [];
      client.on("transport", (name) => used.push(name));
      const received: unknown[] = [];
      client.subscribe("fallback", (data) => received.push(data));
      await waitUntil(() => client.state === "connected", 10_000, "a fallback transport");
      assert.equal(client.transportName, expected);
      assert.deepEqual(used, [expected]);
      await waitUntil(() => client.position("fallback") !== undefined, 10_000, "a position");
      await node.server.hub.publish("fallback", JSON.stringify("still works"));
      await waitUntil(() => received.length === 1, 10_000, "an event over the fallback");
      assert.deepEqual(received, ["still works"]);
      client.close();
    } finally {
      await node.close();
    }
  });

  test("refused WebSocket is retried later", async () => {
    const node = await startHerald({ websocket: { enabled: false }, poll: { holdMs: 1_000 } });
    try {
      let upgrades = 0;
      class CountingWebSocket extends WebSocket {
        constructor(url: string) {
          super(url);
          upgrades++;
        }
      }
      const client = newClient(node, ["websocket", "poll"], { retryBetterAfterMs: 150, WebSocket: CountingWebSocket as never });
      const used: TransportName[] = [];
      client.on("transport", (name) => used.push(name));
      const offsets: number[] = [];
      client.subscribe("upgrade", (_data, context) => offsets.push(context.offset));
      await waitUntil(() => client.position("upgrade") !== undefined, 10_000, "a position");

      const total = 200;
      for (let i = 1; i <= total; i++) {
        await node.server.hub.publish("upgrade", String(i));
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      await waitUntil(() => offsets.length >= total && upgrades >= 3, 20_000, "events and WebSocket retries");
      client.close();

      assert.ok(used.length >= 3, `the client reopened ${used.length} times`);
      assert.ok(used.every((name) => name === "poll"));
      assert.deepEqual(offsets, Array.from({ length: total }, (_, i) => i + 1));
    } finally {
      await node.close();
    }
  });
});

const API_KEY = "api-key-for-sdk-expiry-tests";
const EXPIRY_TRANSPORTS: TransportName[] = ["websocket", "sse", "poll"];

/** Signs a token for channel `feed` that expires in `seconds`. */
function feedToken(seconds: number): Promise<string> {
  return signToken(HMAC_SECRET, { expiresIn: seconds, claims: { channels: ["feed"] } });
}

describe("client SDK token expiry", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ apiKeys: [API_KEY], auth: { hmacSecret: HMAC_SECRET, clockSkewMs: 0 }, poll: { holdMs: 20_000 } });
  });

  after(async () => {
    await node.close();
  });

  for (const transport of EXPIRY_TRANSPORTS) {
    test(`${transport}: expired token closes the client`, async () => {
      const client = newClient(node, [transport], { token: await feedToken(2) });
      const errors: HeraldClientError[] = [];
      client.on("error", (error) => errors.push(error));
      const states: ClientState[] = [];
      client.on("state", (change) => states.push(change.state));
      client.subscribe("feed", () => undefined);

      await waitUntil(() => client.state === "closed", 10_000, "the client to close");
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, "token_expired");
      assert.equal(states.at(-1), "closed");
      assert.equal(states.includes("disconnected"), false, `states ${states.join(", ")}`);
    });

    test(`${transport}: getToken renews an expired token`, async () => {
      let renewals = 0;
      const client = newClient(node, [transport], {
        token: await feedToken(2),
        getToken: async () => {
          renewals++;
          return feedToken(600);
        },
      });
      const errors: HeraldClientError[] = [];
      client.on("error", (error) => errors.push(error));
      const received: unknown[] = [];
      client.subscribe("feed", (data) => received.push(data));
      await waitUntil(() => client.state === "connected", 10_000, "the first connect");

      await waitUntil(() => renewals === 1 && client.state === "connected", 10_000, "the reconnect with a new token");
      const { status } = await publishWithKey(node.http, API_KEY, "feed", `after renewal over ${transport}`);
      assert.equal(status, 200);
      await waitUntil(() => received.includes(`after renewal over ${transport}`), 10_000, "the event after renewal");
      assert.equal(renewals, 1);
      assert.deepEqual(errors, []);
      client.close();
    });
  }

  // With `since`, the SSE transport opens the stream straight away, and an
  // EventSource cannot read the 401 that refuses an expired token.
  test("sse: expired token at open closes", async () => {
    const { body } = await publishWithKey(node.http, API_KEY, "feed", "before the client");
    const since = { epoch: body.epoch, offset: body.offset };
    const client = newClient(node, ["sse"], { token: await feedToken(-5) });
    const errors: HeraldClientError[] = [];
    client.on("error", (error) => errors.push(error));
    const states: ClientState[] = [];
    client.on("state", (change) => states.push(change.state));
    client.subscribe("feed", () => undefined, { since });

    await waitUntil(() => client.state === "closed", 10_000, `the client to close; states ${states.join(", ")}`);
    assert.deepEqual(
      errors.map((error) => error.code),
      ["token_expired"],
    );
  });

  test("sse: getToken renews expired token at open", async () => {
    const { body } = await publishWithKey(node.http, API_KEY, "feed", "before the renewing client");
    const since = { epoch: body.epoch, offset: body.offset };
    let renewals = 0;
    const client = newClient(node, ["sse"], {
      token: await feedToken(-5),
      getToken: async () => {
        renewals++;
        return feedToken(600);
      },
    });
    const received: unknown[] = [];
    client.subscribe("feed", (data) => received.push(data), { since });
    await waitUntil(() => client.state === "connected", 10_000, "the connect with a renewed token");
    await publishWithKey(node.http, API_KEY, "feed", "after the renewal");
    await waitUntil(() => received.includes("after the renewal"), 10_000, "the event after renewal");
    assert.equal(renewals, 1);
    client.close();
  });
});
