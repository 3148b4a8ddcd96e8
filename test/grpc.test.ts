import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { collect, grpcClient } from "./support/grpc-client.js";
import { postJson, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { openSse } from "./support/sse.js";

const API_KEY = "grpc-test-key";

describe("grpc api", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  let grpcPort: number;

  before(async () => {
    node = await startHerald({ apiKeys: [API_KEY], grpc: { enabled: true, port: 0, host: "127.0.0.1", heartbeatMs: 200 } });
    grpcPort = node.server.grpc!.port;
  });

  after(async () => {
    await node.close();
  });

  test("publish reaches websocket, sse and stream", async () => {
    const client = grpcClient(grpcPort, API_KEY);
    const ws = await TestClient.open(node.ws);
    await ws.request({ type: "subscribe", channel: "grpc-a" });
    const sse = await openSse(`${node.http}/sse?channel=grpc-a`);
    await sse.recorder.waitFor(() => sse.recorder.named("subscribed").length === 1, 5_000, "subscribed event");
    const stream = collect(client.subscribe([{ channel: "grpc-a" }]));
    await waitUntil(() => stream.events.some((event) => event.subscribed), 5_000, "subscribed event");

    const offsets: number[] = [];
    for (let i = 0; i < 10; i++) {
      const reply = await client.publish("grpc-a", { i, via: "grpc" });
      offsets.push(reply.offset);
    }
    for (let i = 10; i < 20; i++) {
      const reply = await postJson(node.http, "/api/publish", { channel: "grpc-a", data: { i, via: "http" } }, { Authorization: `Bearer ${API_KEY}` });
      assert.equal(reply.status, 200);
      offsets.push(reply.body.offset);
    }
    assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => i + 1));

    await waitUntil(() => stream.publications("grpc-a").length === 20, 5_000, "20 grpc events");
    const viaGrpc = stream.publications("grpc-a");
    assert.deepEqual(viaGrpc.map((event) => event.offset), offsets);
    assert.deepEqual(viaGrpc.map((event) => JSON.parse(event.data.toString()).i), Array.from({ length: 20 }, (_, i) => i));

    const viaWs = await ws.waitForPubs("grpc-a", 20);
    assert.deepEqual(viaWs.map((event) => event.offset), offsets);
    assert.deepEqual(viaWs.map((event) => event.data), viaGrpc.map((event) => JSON.parse(event.data.toString())));

    await sse.recorder.waitForMessages(20);
    const viaSse = sse.recorder.messages();
    assert.deepEqual(viaSse.map((event) => event.offset), offsets);
    assert.deepEqual(viaSse.map((event) => event.data), viaWs.map((event) => event.data));
    sse.close();

    const subscribed = stream.events.find((event) => event.subscribed).subscribed;
    assert.equal(subscribed.channel, "grpc-a");
    assert.equal(subscribed.offset, 0);
    assert.equal(viaGrpc[0].epoch, subscribed.epoch);
    ws.close();
    client.raw.close();
  });

  test("resubscribe from position gets missed", async () => {
    const client = grpcClient(grpcPort, API_KEY);
    await client.publish("grpc-b", "before");
    const first = client.subscribe([{ channel: "grpc-b" }]);
    const firstEvents = collect(first);
    await waitUntil(() => firstEvents.events.some((event) => event.subscribed), 5_000, "subscribed event");
    await client.publish("grpc-b", "seen");
    await waitUntil(() => firstEvents.publications("grpc-b").length === 1, 5_000, "first event");
    const last = firstEvents.publications("grpc-b")[0];
    first.cancel();
    assert.equal((await firstEvents.status).code, status.CANCELLED);

    const missed: number[] = [];
    for (let i = 0; i < 20; i++) {
      missed.push((await client.publish("grpc-b", { missed: i })).offset);
    }
    const second = collect(client.subscribe([{ channel: "grpc-b", since: { epoch: last.epoch, offset: last.offset } }]));
    await waitUntil(() => second.publications("grpc-b").length >= 20, 5_000, "20 recovered events");
    await client.publish("grpc-b", "live");
    await waitUntil(() => second.publications("grpc-b").length === 21, 5_000, "live event");

    const received = second.publications("grpc-b");
    assert.deepEqual(received.slice(0, 20).map((event) => event.offset), missed);
    assert.equal(JSON.parse(received[20].data.toString()), "live");
    assert.equal(second.events.find((event) => event.subscribed).subscribed.recovered, true);
    client.raw.close();
  });

  test("heartbeats arrive on idle streams", async () => {
    const client = grpcClient(grpcPort, API_KEY);
    const stream = collect(client.subscribe([{ channel: "grpc-idle" }]));
    await waitUntil(() => stream.events.filter((event) => event.heartbeat).length >= 2, 5_000, "two heartbeats");
    assert.ok(stream.events.find((event) => event.heartbeat).heartbeat.timeMs > 0);
    client.raw.close();
  });

  test("missing or wrong api key is unauthenticated", async () => {
    for (const key of [undefined, "wrong-key"]) {
      const client = grpcClient(grpcPort, key);
      await assert.rejects(client.publish("grpc-c", 1), (error: any) => {
        assert.equal(error.code, status.UNAUTHENTICATED);
        assert.equal(error.metadata.get("herald-error-code")[0], "unauthorized");
        return true;
      });
      const stream = collect(client.subscribe([{ channel: "grpc-c" }]));
      assert.equal((await stream.status).code, status.UNAUTHENTICATED);
      assert.equal(stream.events.length, 0);
      client.raw.close();
    }
  });

  test("invalid input is invalid argument", async () => {
    const client = grpcClient(grpcPort, API_KEY);
    await assert.rejects(client.publish("bad channel", 1), (error: any) => {
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.equal(error.metadata.get("herald-error-code")[0], "invalid_channel");
      return true;
    });
    await assert.rejects(client.call("Publish", { channel: "ok", data: Buffer.from("{not json") }), (error: any) => {
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.equal(error.metadata.get("herald-error-code")[0], "invalid_json");
      return true;
    });
    const stream = collect(client.subscribe([{ channel: "bad channel" }]));
    const final = await stream.status;
    assert.equal(final.code, status.INVALID_ARGUMENT);
    assert.equal(final.metadata.get("herald-error-code")[0], "invalid_channel");

    const batch = await client.call("PublishBatch", {
      items: [
        { channel: "grpc-batch", data: Buffer.from("1") },
        { channel: "grpc-batch", data: Buffer.from('{"two":2}') },
      ],
    });
    assert.deepEqual(batch.results.map((result: any) => result.offset), [1, 2]);
    await assert.rejects(
      client.call("PublishBatch", { items: [{ channel: "grpc-batch", data: Buffer.from("3") }, { channel: "bad name", data: Buffer.from("4") }] }),
      (error: any) => error.code === status.INVALID_ARGUMENT,
    );
    const history = await client.call("History", { channel: "grpc-batch", since: 0, limit: 0 });
    assert.deepEqual(history.publications.map((item: any) => JSON.parse(item.data.toString())), [1, { two: 2 }]);
    assert.equal(history.top, 2);
    client.raw.close();
  });

  test("idempotency key publishes once", async () => {
    const client = grpcClient(grpcPort, API_KEY);
    const first = await client.publish("grpc-idem", { n: 1 }, "key-1");
    const retry = await client.publish("grpc-idem", { n: 1 }, "key-1");
    assert.equal(retry.offset, first.offset);
    const history = await client.call("History", { channel: "grpc-idem", since: 0, limit: 0 });
    assert.equal(history.publications.length, 1);
    const info = await client.call("Info", {});
    assert.equal(info.node, node.server.nodeId);
    assert.equal(info.broker, "memory");
    assert.equal(info.state, "running");
    client.raw.close();
  });
});

describe("grpc drain", () => {
  test("draining ends streams with unavailable", async () => {
    const node = await startHerald({ grpc: { enabled: true, port: 0, host: "127.0.0.1" } });
    const client = grpcClient(node.server.grpc!.port);
    const stream = collect(client.subscribe([{ channel: "grpc-drain" }]));
    await waitUntil(() => stream.events.some((event) => event.subscribed), 5_000, "subscribed event");
    const closing = node.close();
    const final = await stream.status;
    assert.equal(final.code, status.UNAVAILABLE);
    assert.equal(final.metadata.get("herald-error-code")[0], "draining");
    await closing;
    client.raw.close();
  });
});

describe("grpc backpressure", () => {
  test("slow stream is ended and resumes", async () => {
    const node = await startHerald({
      limits: { outboundBufferBytes: 64 * 1024 },
      namespaces: { slow: { historySize: 1000 } },
      grpc: { enabled: true, port: 0, host: "127.0.0.1" },
    });
    after(() => node.close());
    const client = grpcClient(node.server.grpc!.port);
    const call = client.subscribe([{ channel: "slow:grpc" }]);
    const slow = collect(call);
    await waitUntil(() => slow.events.some((event) => event.subscribed), 5_000, "subscribed event");
    call.pause();

    // 400 events of 8 KiB each: far more than HTTP/2 windows and the 64 KiB buffer hold.
    const filler = "x".repeat(8 * 1024);
    for (let n = 1; n <= 400; n++) {
      await client.publish("slow:grpc", { n, filler });
    }
    await waitUntil(() => node.server.grpc!.connectionCount() === 0, 10_000, "the slow stream to be released");

    call.resume();
    const final = await slow.status;
    assert.equal(final.code, status.RESOURCE_EXHAUSTED);
    assert.equal(final.metadata.get("herald-error-code")[0], "slow_consumer");
    const got = slow.publications("slow:grpc");
    assert.ok(got.length < 400, `the slow stream got ${got.length} of 400 events before it was ended`);
    assert.deepEqual(got.map((event) => event.offset), Array.from({ length: got.length }, (_, i) => i + 1));

    const last = got.length === 0 ? { epoch: slow.events.find((event) => event.subscribed).subscribed.epoch, offset: 0 } : got[got.length - 1];
    const resumed = collect(client.subscribe([{ channel: "slow:grpc", since: { epoch: last.epoch, offset: last.offset } }]));
    // The recovered events exceed the 64 KiB buffer many times over; recovery is bounded by history, not by the buffer.
    await waitUntil(() => resumed.publications("slow:grpc").length === 400 - last.offset, 10_000, "the rest of the events");
    const rest = resumed.publications("slow:grpc").map((event) => event.offset);
    assert.deepEqual(rest, Array.from({ length: 400 - last.offset }, (_, i) => last.offset + i + 1));
    assert.equal(resumed.events.find((event) => event.subscribed).subscribed.recovered, true);
    client.raw.close();
  });
});
