import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { connect as connectTcp, type Socket } from "node:net";
import { describe, test } from "node:test";
import { postJson, TestClient } from "./support/herald.js";
import { freePort, waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";
import { startProcess, type Managed } from "./support/processes.js";
import { RawWebSocket } from "./support/raw-websocket.js";

const SLOW_CLIENTS = 100;
const FAST_CLIENTS = 20;
const EVENT_BYTES = 32 * 1024;
const EVENTS = 1_600; // 1,600 x 32 KiB = 50 MiB
const BATCH = 25;
/**
 * Peak RSS the node may reach over its own idle RSS. Each slow client
 * keeps at most the 1 MiB outbound limit plus one event in the node, and
 * queued frames share one Buffer per event. Measured growth on a 2-core
 * Linux VM with Node 20: about 55 MiB over an idle 72 MiB; without the
 * limit it would approach 100 x 50 MiB.
 */
const RSS_GROWTH_BOUND_BYTES = 128 * 1024 * 1024;

/** Starts `herald serve` as its own process, so its RSS is the node's alone. */
async function startNode(): Promise<{ herald: Managed; port: number; http: string }> {
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const herald = startProcess(process.execPath, ["bin/herald.js", "serve"], {
    env: { ...process.env, HERALD_PORT: String(port), HERALD_HOST: "127.0.0.1", HERALD_LOG_LEVEL: "info" },
  });
  await waitUntil(async () => (await fetch(`${http}/healthz`).catch(() => undefined))?.status === 200, 15_000, "herald to start");
  return { herald, port, http };
}

/** Subscribes FAST_CLIENTS reading WebSocket clients to the channel. */
async function openFastClients(port: number, channel: string): Promise<TestClient[]> {
  const fast = await Promise.all(Array.from({ length: FAST_CLIENTS }, () => TestClient.open(`ws://127.0.0.1:${port}/ws`)));
  for (const client of fast) {
    const reply = await client.request({ type: "subscribe", channel });
    assert.equal(reply.type, "reply");
  }
  return fast;
}

/** Publishes EVENTS events of EVENT_BYTES each in batches; returns the highest RSS seen meanwhile. */
async function publishFlood(http: string, pid: number, channel: string): Promise<number> {
  const payload = "x".repeat(EVENT_BYTES);
  let peakRss = 0;
  for (let sent = 0; sent < EVENTS; sent += BATCH) {
    const items = Array.from({ length: BATCH }, (_, i) => ({ channel, data: { n: sent + i + 1, payload } }));
    const { status } = await postJson(http, "/api/publish_batch", { items });
    assert.equal(status, 200);
    peakRss = Math.max(peakRss, memory(pid).rss);
  }
  return peakRss;
}

/** Publishes 32 KiB events on a channel with one paused subscriber until the node closes it as slow; returns the count. */
async function floodUntilClosed(http: string, channel: string): Promise<number> {
  const payload = "x".repeat(EVENT_BYTES);
  let published = 0;
  while ((await slowCloses(http, "websocket")) === 0) {
    if (published >= EVENTS) {
      assert.fail(`the paused client on ${channel} was not closed after ${published} events`);
    }
    const items = Array.from({ length: BATCH }, (_, i) => ({ channel, data: { n: published + i + 1, payload } }));
    const { status } = await postJson(http, "/api/publish_batch", { items });
    assert.equal(status, 200);
    published += BATCH;
  }
  return published;
}

async function assertEveryEvent(fast: TestClient[], channel: string): Promise<void> {
  for (const client of fast) {
    const events = await client.waitForPubs(channel, EVENTS, 60_000);
    assert.deepEqual(
      events.map((event) => event.offset),
      Array.from({ length: EVENTS }, (_, i) => i + 1),
    );
  }
}

function assertRssBound(peak: number, idleRss: number): void {
  assert.ok(
    peak - idleRss < RSS_GROWTH_BOUND_BYTES,
    `peak RSS grew by ${Math.round((peak - idleRss) / 1048576)} MiB (idle ${Math.round(idleRss / 1048576)} MiB)`,
  );
}

describe("limits slow consumers", () => {
  test("never-reading websockets stay bounded", async () => {
    const { herald, port, http } = await startNode();
    try {
      await neverReadingWebSockets(herald, port, http);
    } finally {
      await herald.stop();
    }
  });

  test("never-reading SSE streams stay bounded", async () => {
    const { herald, port, http } = await startNode();
    try {
      await neverReadingSseStreams(herald, port, http);
    } finally {
      await herald.stop();
    }
  });
});

async function neverReadingWebSockets(herald: Managed, port: number, http: string): Promise<void> {
  const pid = herald.child.pid!;
  const idleRss = memory(pid).rss;
  const channel = "flood";
  const connect = JSON.stringify({ id: 1, type: "connect" });
  const subscribe = JSON.stringify({ id: 2, type: "subscribe", channel });

  // The resumer pauses like the slow clients but on a channel of its own, flooded first, so it is
  // certainly the first client the node closes; it then resumes to read its close frame.
  const resumerChannel = "flood-resumer";
  const resumer = await RawWebSocket.open(port);
  resumer.sendText(connect);
  resumer.sendText(JSON.stringify({ id: 2, type: "subscribe", channel: resumerChannel }));
  await resumer.until(() => resumer.texts.some((text) => text.includes('"id":2')));
  resumer.pause();

  const slow: RawWebSocket[] = [];
  for (let i = 0; i < SLOW_CLIENTS; i++) {
    const client = await RawWebSocket.open(port);
    client.sendText(connect);
    client.sendText(subscribe);
    await client.until(() => client.texts.some((text) => text.includes('"id":2')));
    client.pause();
    slow.push(client);
  }

  const resumerEvents = await floodUntilClosed(http, resumerChannel);
  resumer.resume();

  const fast = await openFastClients(port, channel);
  const peakRss = await publishFlood(http, pid, channel);
  await assertEveryEvent(fast, channel);

  // A client that never reads cannot see its close frame, so the node's metrics are the witness.
  await waitUntil(async () => (await slowCloses(http, "websocket")) >= SLOW_CLIENTS + 1, 30_000, "every slow client to be closed");
  assert.equal(await slowCloses(http, "websocket"), SLOW_CLIENTS + 1);

  // Resumed before the node's 5 s close timeout, the reader drains its backlog and then the close frame.
  await resumer.until(() => resumer.closeCode !== undefined, 30_000);
  assert.equal(resumer.closeCode, 4008);
  const received = resumer.texts.map((text) => JSON.parse(text)).filter((message) => message.type === "pub");
  assert.ok(received.length > 0);
  assert.ok(received.length < resumerEvents, `the resumer got ${received.length} of ${resumerEvents} events`);
  assert.deepEqual(
    received.map((event) => event.offset),
    Array.from({ length: received.length }, (_, i) => i + 1),
  );

  // It resumes from its offset: every later event still in history, or a gap notice where history
  // no longer covers it, then live events.
  const subscribed = resumer.texts.map((text) => JSON.parse(text)).find((message) => message.id === 2);
  const again = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
  const since = { epoch: subscribed.result.epoch, offset: received.length };
  const resumed = await again.request({ type: "subscribe", channel: resumerChannel, since });
  assert.equal(resumed.type, "reply");
  if (resumed.result.recovered) {
    const rest = await again.waitForPubs(resumerChannel, resumerEvents - received.length);
    assert.deepEqual(
      rest.map((event) => event.offset),
      Array.from({ length: resumerEvents - received.length }, (_, i) => received.length + i + 1),
    );
  } else {
    const gap = await again.waitFor((message) => message.type === "gap");
    assert.equal(gap.offset, resumerEvents);
  }
  await postJson(http, "/api/publish", { channel: resumerChannel, data: "after" });
  await again.waitFor((message) => message.type === "pub" && message.offset === resumerEvents + 1);

  assertRssBound(Math.max(peakRss, memory(pid).peak), idleRss);

  again.close();
  fast.forEach((client) => client.close());
  slow.forEach((client) => client.destroy());
  resumer.destroy();
}

/**
 * Like the WebSocket case, with raw SSE requests that read up to the
 * `subscribed` event and then stop reading, and fast clients on SSE too.
 * SSE has no close code, so a stream the node has ended shows as the end
 * of the response once the client reads again. A stream still open would
 * keep sending heartbeats.
 */
async function neverReadingSseStreams(herald: Managed, port: number, http: string): Promise<void> {
  const pid = herald.child.pid!;
  const idleRss = memory(pid).rss;
  const channel = "flood";
  const slow: Array<{ socket: Socket; ended: Promise<void> }> = [];
  for (let i = 0; i < SLOW_CLIENTS; i++) {
    const socket = connectTcp(port, "127.0.0.1");
    socket.on("error", () => undefined);
    let text = "";
    const subscribed = new Promise<void>((resolve) => {
      socket.on("data", (chunk: Buffer) => {
        if (text.length < 4_096) {
          text += chunk.toString();
          if (text.includes("event: subscribed")) resolve();
        }
      });
    });
    const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(`GET /sse?channel=${channel} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    await subscribed;
    socket.pause();
    slow.push({ socket, ended });
  }

  const fast = await Promise.all(Array.from({ length: FAST_CLIENTS }, () => openOffsetReader(port, channel)));
  const peakRss = await publishFlood(http, pid, channel);
  const expected = Array.from({ length: EVENTS }, (_, i) => i + 1);
  for (const reader of fast) {
    await waitUntil(() => reader.offsets.length >= EVENTS || reader.ended, 60_000, "every event on a fast SSE stream");
    assert.deepEqual(reader.offsets, expected);
  }
  assert.equal(await slowCloses(http, "sse"), SLOW_CLIENTS);

  for (const client of slow) {
    client.socket.resume();
  }
  await Promise.all(
    slow.map((client) =>
      Promise.race([
        client.ended,
        new Promise((_, reject) => setTimeout(() => reject(new Error("a slow SSE stream was not ended by the node")), 30_000)),
      ]),
    ),
  );
  assertRssBound(Math.max(peakRss, memory(pid).peak), idleRss);
  assert.ok(
    fast.every((reader) => !reader.ended),
    "the fast SSE streams are still open",
  );
  fast.forEach((reader) => reader.close());
}

/**
 * Opens an event stream and keeps only the offset of each message, so
 * that 50 MiB per stream costs the test little memory. Resolves once the
 * `subscribed` event has arrived.
 */
function openOffsetReader(port: number, channel: string): Promise<{ offsets: number[]; ended: boolean; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: `/sse?channel=${channel}`, agent: false }, (res) => {
      const reader = { offsets: [] as number[], ended: false, close: () => req.destroy() };
      let pending = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        pending += chunk;
        let end = pending.indexOf("\n\n");
        while (end >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          if (block.includes("event: subscribed")) {
            resolve(reader);
          }
          const offset = /^data: \{"channel":"[^"]*","offset":(\d+),/m.exec(block)?.[1];
          if (offset !== undefined) {
            reader.offsets.push(Number(offset));
          }
          end = pending.indexOf("\n\n");
        }
      });
      res.once("close", () => {
        reader.ended = true;
      });
      res.on("error", () => undefined);
    });
    req.once("error", reject);
    req.end();
  });
}

/** Slow-consumer closes the node counted for a transport. */
async function slowCloses(http: string, transport: string): Promise<number> {
  const samples = await scrape(http);
  return sample(samples, "herald_slow_consumer_closes_total", { transport });
}

/** Current and peak resident set size of a process, in bytes, from /proc/PID/status. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}
