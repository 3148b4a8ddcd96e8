import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, test } from "node:test";
import type { PublishOptions, Publication } from "../src/broker/broker.js";
import { MemoryBroker } from "../src/broker/memory-broker.js";
import type { LifecycleEvent } from "../src/lifecycle.js";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil, within } from "./support/ports.js";
import { readHead } from "./support/raw-socket.js";

/**
 * A memory broker whose publishes on channels named `slow-…` wait until
 * the test opens the gate, so a client's publish command stays in flight
 * for as long as the test needs, without a sleep in the server.
 */
class GatedBroker extends MemoryBroker {
  waiting = 0;
  private release: () => void = () => undefined;
  private readonly gate = new Promise<void>((resolve) => {
    this.release = resolve;
  });

  open(): void {
    this.release();
  }

  override async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    if (channel.startsWith("slow-")) {
      this.waiting++;
      await this.gate;
      this.waiting--;
    }
    return super.publish(channel, data, options);
  }
}

describe("drain", () => {
  test("in-flight commands get replies before 1001", async () => {
    const broker = new GatedBroker();
    const node = await startHerald({ drain: { timeoutMs: 30_000 }, defaults: { clientPublish: true } }, { broker });
    const events: LifecycleEvent[] = [];
    node.server.onLifecycle((event) => events.push(event));

    const clients = await Promise.all(Array.from({ length: 200 }, () => TestClient.open(node.ws)));
    await Promise.all(clients.map((client) => client.request({ type: "subscribe", channel: "live" })));
    const busy = clients.slice(0, 20);
    const idle = clients.slice(20);
    const order = new Map<TestClient, string[]>();
    for (const client of busy) {
      order.set(client, []);
      void client.closed.then(() => order.get(client)!.push("close"));
    }
    const replies = busy.map((client, i) =>
      client.request({ type: "publish", channel: `slow-${i}`, data: { i } }).then((reply) => {
        order.get(client)!.push("reply");
        return reply;
      }),
    );
    await waitUntil(() => broker.waiting === 20, 10_000, "20 publish commands held by the broker");

    const closing = node.close();

    const idleCloses = await Promise.all(idle.map((client) => client.closed));
    for (const close of idleCloses) {
      assert.equal(close.code, 1001);
      assert.equal(close.reason, "server draining");
    }
    assert.equal(node.server.nodeState, "draining");
    for (const client of busy) {
      assert.equal(client.socket.readyState, client.socket.OPEN, "a busy client was closed before its reply");
    }

    // Publishes over HTTP are still accepted and reach the subscribers still connected.
    const acked: number[] = [];
    for (let n = 1; n <= 50; n++) {
      acked.push((await publish(node.http, "live", { n })).offset);
    }
    for (const client of busy) {
      const pubs = await client.waitForPubs("live", 50);
      assert.deepEqual(
        pubs.map((pub) => pub.offset),
        acked,
      );
    }

    // New work on a busy connection is turned away so the drain can finish.
    const rejected = await busy[0]!.request({ type: "ping" });
    assert.equal(rejected.type, "error");
    assert.equal(rejected.error.code, "draining");

    broker.open();
    const results = await Promise.all(replies);
    for (const [i, reply] of results.entries()) {
      assert.equal(reply.type, "reply", JSON.stringify(reply));
      assert.equal(reply.result.channel, `slow-${i}`);
      assert.equal(reply.result.offset, 1);
    }
    const busyCloses = await Promise.all(busy.map((client) => client.closed));
    for (const close of busyCloses) {
      assert.equal(close.code, 1001);
    }
    for (const client of busy) {
      assert.deepEqual(order.get(client), ["reply", "close"]);
    }

    await closing;
    assert.equal(node.server.nodeState, "closed");
    assert.deepEqual(
      events.map((event) => event.type),
      ["shutdown_requested", "draining", "drained", "closed"],
    );
    assert.deepEqual(events[1], { type: "draining", connections: 200 });
  });

  test("drain delay keeps serving while unready", async () => {
    const node = await startHerald({ drain: { delayMs: 1_000, timeoutMs: 10_000 } });
    const events: LifecycleEvent[] = [];
    node.server.onLifecycle((event) => events.push(event));
    const early = await TestClient.open(node.ws);

    const ready = await fetch(`${node.http}/readyz`);
    assert.equal(ready.status, 200);
    const closing = node.server.close("test");
    assert.equal(node.server.ready(), false);

    const notReady = await fetch(`${node.http}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(((await notReady.json()) as any).error.code, "draining");
    assert.equal(notReady.headers.get("connection"), "close");
    const health = await fetch(`${node.http}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as any).state, "running");

    // Until the delay ends, the node still takes connections and commands.
    const late = await TestClient.open(node.ws);
    const pong = await late.request({ type: "ping" });
    assert.equal(pong.type, "reply");
    assert.equal(early.socket.readyState, early.socket.OPEN);

    const [earlyClose, lateClose] = await Promise.all([early.closed, late.closed]);
    assert.equal(earlyClose.code, 1001);
    assert.equal(lateClose.code, 1001);
    await closing;
    assert.deepEqual(events[0], { type: "shutdown_requested", reason: "test", delayMs: 1_000, timeoutMs: 10_000 });
  });

  test("upgrade while draining gets 503 with Retry-After", async () => {
    const broker = new GatedBroker();
    const node = await startHerald({ drain: { timeoutMs: 10_000 }, defaults: { clientPublish: true } }, { broker });
    const holder = await TestClient.open(node.ws);
    const reply = holder.request({ type: "publish", channel: "slow-hold", data: 1 });
    await waitUntil(() => broker.waiting === 1, 10_000, "the held publish");
    const closing = node.close();
    assert.equal(node.server.nodeState, "draining");

    // allowHalfOpen: the client keeps its side open after the server's FIN.
    const socket = connect({ port: node.port, host: "127.0.0.1", allowHalfOpen: true });
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const { head, rest } = await readHead(socket);
    const lines = head.split("\r\n");
    assert.equal(lines[0], "HTTP/1.1 503 Service Unavailable");
    const retryAfter = lines.find((line) => line.toLowerCase().startsWith("retry-after:"));
    assert.ok(retryAfter, head);
    const seconds = Number(retryAfter.split(":")[1]);
    assert.ok(Number.isInteger(seconds), retryAfter);
    assert.ok(seconds >= 1, retryAfter);
    assert.match(rest.toString(), /"code":"draining"/);

    broker.open();
    assert.equal((await reply).type, "reply");
    assert.equal((await holder.closed).code, 1001);
    // The rejected client never closes its end; close() must not wait for it.
    await within(closing, 10_000, "close() with a rejected upgrade socket left open");
    socket.destroy();
  });

  test("close does not wait on idle keep-alive connection", async () => {
    const node = await startHerald({ drain: { timeoutMs: 60_000 } });
    const socket = connect(node.port, "127.0.0.1");
    const socketClosed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
    const { head } = await readHead(socket);
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(head, /connection: close/i);

    await within(node.close(), 10_000, "close() with an idle keep-alive connection");
    await within(socketClosed, 10_000, "the keep-alive socket's close");
    assert.equal(node.server.nodeState, "closed");
  });

  test("request in progress at close still completes", async () => {
    const node = await startHerald({ drain: { timeoutMs: 10_000 } });
    const body = JSON.stringify({ channel: "late", data: { n: 1 } });
    const socket = connect(node.port, "127.0.0.1");
    socket.write(
      `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body.slice(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = node.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.write(body.slice(10));

    const { head, rest } = await readHead(socket);
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /connection: close/i);
    assert.match(rest.toString(), /"offset":1/);
    await within(closing, 10_000, "close() after the last request");
  });

  test("half-sent request is cut at drain timeout", async () => {
    const node = await startHerald({ drain: { timeoutMs: 500 } });
    const events: LifecycleEvent[] = [];
    node.server.onLifecycle((event) => events.push(event));
    const socket = connect(node.port, "127.0.0.1");
    const socketClosed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.write("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
    await new Promise((resolve) => setTimeout(resolve, 50));

    await within(node.close(), 10_000, "close() with a half-sent request");
    await within(socketClosed, 10_000, "the half-sent request's socket close");
    assert.deepEqual(
      events.map((event) => event.type),
      ["shutdown_requested", "draining", "drained", "closed"],
    );
    const closed = events[3] as Extract<LifecycleEvent, { type: "closed" }>;
    // The request got the drain timeout to finish before it was cut.
    assert.ok(closed.elapsedMs >= 450, `closed after ${closed.elapsedMs} ms`);
  });

  test("close is idempotent", async () => {
    const node = await startHerald();
    const first = node.close();
    const second = node.close();
    assert.equal(first, second);
    await first;
    assert.equal(node.server.nodeState, "closed");
  });
});
