import assert from "node:assert/strict";
import { get, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { describe, test } from "node:test";
import { publish, TestClient } from "./support/herald.js";
import { startHeraldProcess } from "./support/herald-process.js";
import { waitUntil, within } from "./support/ports.js";
import { closeDetails, OPCODE_CLOSE, RawWebSocket, readHead } from "./support/raw-socket.js";

// These tests drive the real `herald serve` process with signals.

const CLIENTS = 200;
const BUSY = 20;
const HELD_HTTP = 200;

/** Returns whether the node serves `url` (anything but 404); a request still held after 5 s counts as served. */
function endpointExists(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false }, (res) => {
      resolve(res.statusCode !== 404);
      req.destroy();
    });
    req.on("error", () => resolve(false));
    req.setTimeout(5_000, () => {
      resolve(true);
      req.destroy();
    });
  });
}

interface HttpStream {
  readonly response: Promise<IncomingMessage>;
  /** Resolves with Date.now() when the response ends. */
  readonly ended: Promise<number>;
  body(): string;
}

/** Opens a GET that may be held or streamed, with its own TCP connection. */
function openStream(url: string): HttpStream {
  let body = "";
  let onResponse: (res: IncomingMessage) => void = () => undefined;
  const response = new Promise<IncomingMessage>((resolve) => {
    onResponse = resolve;
  });
  const ended = new Promise<number>((resolve, reject) => {
    const req = get(url, { agent: false }, (res) => {
      onResponse(res);
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve(Date.now()));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  return { response, ended, body: () => body };
}

interface ReadinessSample {
  readonly at: number;
  readonly status: number;
  /** The node state from /healthz, asked right after the first 503. */
  readonly state?: string;
}

/** Polls /readyz until stopped and records when each response arrived. */
function watchReadiness(http: string): { stop(): Promise<ReadinessSample[]> } {
  const samples: ReadinessSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const response = await fetch(`${http}/readyz`);
        await response.arrayBuffer();
        const first503 = response.status === 503 && !samples.some((sample) => sample.status === 503);
        const at = Date.now();
        const state = first503 ? (await healthz(http)).state : undefined;
        samples.push({ at, status: response.status, state });
      } catch {
        // The listener is closed once the drain ends.
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

function pause(client: TestClient): void {
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
}

function resume(client: TestClient): void {
  (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
}

async function healthz(http: string): Promise<{ state: string; connections: Record<string, number> }> {
  const response = await fetch(`${http}/healthz`);
  assert.equal(response.status, 200);
  return (await response.json()) as { state: string; connections: Record<string, number> };
}

describe("drain on signal", () => {
  test("SIGTERM drains every client and exits 0", async (t) => {
    const node = await startHeraldProcess({ env: {
      // Long enough that the /healthz check after the first 503 lands before draining starts.
      HERALD_DRAIN_DELAY_MS: "1000",
      HERALD_DRAIN_TIMEOUT_MS: "30000",
      // Longer than the test, so a poll that returns did so because of the drain.
      HERALD_POLL_HOLD_MS: "60000",
      // The busy clients stop reading while an 8 MB reply is queued for them; live events queue behind it.
      HERALD_LIMITS_OUTBOUND_BUFFER_BYTES: String(64 * 1024 * 1024),
    } });
    t.after(() => node.process.stop("SIGKILL"));

    const sseUrl = `${node.http}/sse?channel=live`;
    const pollUrl = `${node.http}/poll?channel=live`;
    const hasSse = await endpointExists(sseUrl);
    const hasPoll = await endpointExists(`${pollUrl}&cursor=%21`);
    t.diagnostic(`SSE part ${hasSse ? "runs" : "skipped: no /sse endpoint"}`);
    t.diagnostic(`long-poll part ${hasPoll ? "runs" : "skipped: no /poll endpoint"}`);

    const large = "x".repeat(200_000);
    for (let i = 0; i < 40; i++) {
      await publish(node.http, "bulk", { i, large });
    }

    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.open(node.ws)));
    await Promise.all(clients.map((client) => client.request({ type: "subscribe", channel: "live" })));
    const firstClose: number[] = [];
    for (const client of clients) {
      void client.closed.then(() => firstClose.push(Date.now()));
    }

    // A busy client has a command whose 8 MB reply is still unsent because the client stopped reading.
    const busy = clients.slice(0, BUSY);
    const idle = clients.slice(BUSY);
    const historyReplies = busy.map((client) => {
      pause(client);
      client.socket.send(JSON.stringify({ id: 1_000, type: "history", channel: "bulk" }));
      return client.waitFor((message) => message.id === 1_000, 60_000);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const streams = hasSse ? Array.from({ length: HELD_HTTP }, () => openStream(sseUrl)) : [];
    const polls = hasPoll ? Array.from({ length: HELD_HTTP }, () => openStream(pollUrl)) : [];
    for (const stream of streams) {
      assert.equal((await stream.response).statusCode, 200);
      void stream.ended.then((at) => firstClose.push(at));
    }
    for (const poll of polls) {
      void poll.ended.then((at) => firstClose.push(at));
    }
    if (hasPoll) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const readiness = watchReadiness(node.http);
    await waitUntil(async () => (await fetch(`${node.http}/readyz`)).status === 200, 5_000, "readiness before SIGTERM");
    const signalledAt = Date.now();
    node.signal("SIGTERM");

    const idleCloses = await within(Promise.all(idle.map((client) => client.closed)), 15_000, "the idle clients' close");
    for (const close of idleCloses) {
      assert.equal(close.code, 1001);
      assert.equal(close.reason, "server draining");
    }

    // SSE streams end with a last retry:, held polls return at once with their cursor.
    for (const stream of streams) {
      await within(stream.ended, 15_000, "the end of an SSE stream after SIGTERM");
      assert.ok((stream.body().match(/^retry: ?\d+$/gm) ?? []).length >= 2, "no retry: sent at drain");
    }
    for (const poll of polls) {
      await within(poll.ended, 15_000, "the return of a held poll after SIGTERM");
      assert.equal((await poll.response).statusCode, 200);
      const body = JSON.parse(poll.body()) as { events: unknown[]; cursor: string };
      assert.ok(Array.isArray(body.events));
      assert.equal(typeof body.cursor, "string");
    }

    // The busy clients hold the drain open; the node still serves HTTP.
    const health = await healthz(node.http);
    assert.equal(health.state, "draining");
    assert.equal(health.connections.websocket, BUSY);
    const raw = connect(node.port, "127.0.0.1");
    raw.write(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const { head } = await readHead(raw);
    raw.destroy();
    assert.match(head, /^HTTP\/1\.1 503 /);
    assert.match(head, /\r\nRetry-After: \d+/i);

    const acked: number[] = [];
    for (let n = 1; n <= 50; n++) {
      acked.push((await publish(node.http, "live", { n })).offset);
    }

    for (const client of busy) {
      resume(client);
    }
    const replies = await Promise.all(historyReplies);
    for (const reply of replies) {
      assert.equal(reply.type, "reply", JSON.stringify(reply).slice(0, 200));
      assert.equal(reply.result.publications.length, 40);
    }
    const busyCloses = await within(Promise.all(busy.map((client) => client.closed)), 15_000, "the busy clients' close");
    for (const close of busyCloses) {
      assert.equal(close.code, 1001);
    }
    // Every publish acknowledged during the drain reached every subscriber still connected.
    for (const client of busy) {
      assert.deepEqual(
        client.pubs("live").map((pub) => pub.offset),
        acked,
      );
    }

    const exit = await within(node.exited, 15_000, "the exit after the drain");
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(node.process.output(), /"msg":"herald stopped"/);

    const samples = await readiness.stop();
    const first503 = samples.find((sample) => sample.status === 503);
    assert.ok(first503, "/readyz never returned 503");
    const closedAt = Math.min(...firstClose);
    t.diagnostic(`first 503 at +${first503.at - signalledAt} ms, first close at +${closedAt - signalledAt} ms`);
    assert.ok(first503.at < closedAt, `first 503 at +${first503.at - signalledAt} ms, first close at +${closedAt - signalledAt} ms`);
    // Readiness turned before anything else changed: the node had not started draining yet.
    assert.equal(first503.state, "running");
    const after = samples.filter((sample) => sample.at >= first503.at);
    assert.ok(
      after.every((sample) => sample.status === 503),
      "/readyz went back to 200 after a 503",
    );
  });

  test("silent client is cut at drain timeout", async (t) => {
    const node = await startHeraldProcess({ env: { HERALD_DRAIN_TIMEOUT_MS: "1500" } });
    t.after(() => node.process.stop("SIGKILL"));
    const polite = await RawWebSocket.open(node.port);
    const silent = await RawWebSocket.open(node.port);
    await waitUntil(async () => (await healthz(node.http)).connections.websocket === 2, 5_000, "both connections");

    const signalledAt = Date.now();
    node.signal("SIGINT");

    // A client that completes the close handshake gets the close frame, then a FIN.
    const politeClose = closeDetails(await polite.waitForFrame(OPCODE_CLOSE));
    assert.deepEqual(politeClose, { code: 1001, reason: "server draining" });
    polite.sendClose(1001);
    const politeEnded = await within(polite.ended, 5_000, "the polite client's FIN");
    assert.equal(polite.finReceived, true, "the polite client's connection was reset, not ended");

    // A client that never replies to the close frame keeps its TCP connection until the drain timeout.
    const silentClose = closeDetails(await silent.waitForFrame(OPCODE_CLOSE));
    assert.deepEqual(silentClose, { code: 1001, reason: "server draining" });
    const silentEnded = await within(silent.ended, 15_000, "the silent client's disconnect");
    assert.ok(politeEnded < silentEnded, "the polite client was not released first");
    assert.ok(silentEnded - signalledAt >= 1_400, `silent client cut after ${silentEnded - signalledAt} ms`);

    const exit = await within(node.exited, 15_000, "the exit after the drain timeout");
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(node.process.output(), /"msg":"drain timeout reached; destroying the remaining connections"/);
  });

  test("second SIGTERM exits at once", async (t) => {
    const node = await startHeraldProcess({ env: { HERALD_DRAIN_TIMEOUT_MS: "60000" } });
    t.after(() => node.process.stop("SIGKILL"));
    await publish(node.http, "bulk", { large: "x".repeat(900_000) });
    const client = await TestClient.open(node.ws);
    pause(client);
    void client.request({ type: "history", channel: "bulk" }).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));

    node.signal("SIGTERM");
    await waitUntil(async () => (await healthz(node.http)).state === "draining", 5_000, "the drain to start");
    assert.equal((await healthz(node.http)).connections.websocket, 1);
    node.signal("SIGTERM");

    const exit = await within(node.exited, 10_000, "the exit after a second SIGTERM");
    assert.equal(exit.code, 143);
    assert.match(node.process.output(), /"msg":"second signal: exiting at once"/);
    client.socket.terminate();
  });
});
