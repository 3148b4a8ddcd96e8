import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import type { Identity } from "../src/auth/identity.js";
import { protocolError } from "../src/errors.js";
import { createLogger } from "../src/log.js";
import { postJson, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { openSse } from "./support/sse.js";

const API_KEY = "api-key-SECRET-1f2e3d";
const ADMIN_TOKEN = "admin-token-SECRET-9a8b7c";
const CLIENT_TOKEN = "client-token-SECRET-5d6e7f";
const SECRETS = [API_KEY, ADMIN_TOKEN, CLIENT_TOKEN, "SECRET"];

/** Collects every log line a node writes, parsed. */
class LogCapture extends Writable {
  readonly text: string[] = [];

  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text.push(chunk.toString());
    callback();
  }

  lines(): any[] {
    return this.text
      .join("")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line));
  }

  withMessage(msg: string): any[] {
    return this.lines().filter((line) => line.msg === msg);
  }
}

describe("logging", () => {
  test("lifecycle lines are written and hold no secret", async () => {
    const capture = new LogCapture();
    const node = await startHerald(
      { apiKeys: [API_KEY], adminToken: ADMIN_TOKEN, admin: { statsIntervalMs: 100 }, limits: { outboundBufferBytes: 64 * 1024 }, log: { level: "debug" } },
      { logger: createLogger("debug", capture) },
    );
    const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

    // Bad credentials on every door: publish API, admin API (header and query), WebSocket connect.
    const badPublish = await postJson(node.http, "/api/publish", { channel: "log:a", data: 1 }, bearer(`${API_KEY}x`));
    assert.equal(badPublish.status, 401);
    const adminAttempts = 31;
    for (let i = 0; i < adminAttempts; i++) {
      const response = await fetch(`${node.http}/admin/api/stats?token=${ADMIN_TOKEN}${i}`);
      assert.equal(response.status, 401);
    }
    const badAdminHeader = await fetch(`${node.http}/admin/api/stats`, { headers: bearer(`${ADMIN_TOKEN}-wrong`) });
    assert.equal(badAdminHeader.status, 401);
    const tokenClient = await TestClient.open(node.ws);
    const rejected = await tokenClient.request({ type: "connect", token: CLIENT_TOKEN });
    assert.equal(rejected.type, "error");
    tokenClient.socket.close(1000);
    await tokenClient.closed;

    // Good credentials, so they pass through every code path that handles them.
    const published = await postJson(node.http, "/api/publish", { channel: "log:a", data: { ok: true } }, bearer(API_KEY));
    assert.equal(published.status, 200);
    const adminStats = await fetch(`${node.http}/admin/api/stats?token=${ADMIN_TOKEN}`);
    assert.equal(adminStats.status, 200);

    // A slow consumer: a client that stops reading while a channel floods.
    const stalled = await TestClient.open(node.ws);
    await stalled.request({ type: "subscribe", channel: "log:flood" });
    (stalled.socket as unknown as { _socket: Socket })._socket.pause();
    const items = Array.from({ length: 40 }, (_, i) => ({ channel: "log:flood", data: { i, payload: "y".repeat(16 * 1024) } }));
    for (let batch = 0; batch < 100 && capture.withMessage("slow consumer closed").length === 0; batch++) {
      const { status } = await postJson(node.http, "/api/publish_batch", { items }, bearer(API_KEY));
      assert.equal(status, 200);
    }
    (stalled.socket as unknown as { _socket: Socket })._socket.resume();
    assert.equal((await stalled.closed).code, 4008);

    // Broker trouble, as an engine reports it to the hub.
    node.server.hub.onError(new Error("connection reset by broker"));
    node.server.hub.onAvailability(false);
    node.server.hub.onAvailability(true);
    node.server.hub.onResync();

    await node.close();
    const lines = capture.lines();
    const messages = lines.map((line) => line.msg);

    for (const expected of [
      "herald started",
      "shutdown started",
      "draining",
      "drain finished",
      "herald stopped",
      "broker operation failed",
      "broker unavailable",
      "broker available",
      "broker reconnected; catching channels up from history",
      "slow consumer closed",
      "authentication failed",
      "admin authentication failed",
      "connection opened",
      "connection closed",
      "repeated log lines suppressed",
    ]) {
      assert.ok(messages.includes(expected), `no log line "${expected}"`);
    }

    const slow = capture.withMessage("slow consumer closed")[0];
    assert.equal(slow.transport, "websocket");
    assert.equal(typeof slow.connection, "string");
    assert.equal(slow.level, 30);
    const brokerError = capture.withMessage("broker operation failed")[0];
    assert.equal(brokerError.level, 50);
    assert.equal(brokerError.operation, "engine");
    assert.equal(brokerError.err.message, "connection reset by broker");
    const authFailure = capture.withMessage("authentication failed")[0];
    assert.equal(authFailure.code, "token_invalid");

    // 32 bad admin attempts: the first 10 are written, the rest are counted.
    assert.equal(capture.withMessage("admin authentication failed").length, 10);
    const summary = capture.withMessage("repeated log lines suppressed").find((line) => line.repeated === "admin authentication failed");
    assert.ok(summary, "no summary for the admin authentication failures");
    assert.equal(summary.suppressed, adminAttempts + 1 - 10);

    const output = capture.text.join("");
    for (const secret of SECRETS) {
      assert.equal(output.includes(secret), false, `the log contains ${secret}`);
    }
  });

  test("sse streams log through child loggers", async () => {
    const capture = new LogCapture();
    const carol: Identity = { user: "carol", anonymous: false, subscribe: ["*"], publish: [], expiresAt: undefined };
    const authenticator = {
      enabled: true,
      async authenticate(token: string | undefined): Promise<Identity> {
        if (token === CLIENT_TOKEN) {
          return carol;
        }
        throw protocolError("token_invalid", "Unknown test token.");
      },
    };
    const node = await startHerald({ adminToken: ADMIN_TOKEN, log: { level: "debug" } }, { logger: createLogger("debug", capture), authenticator });

    const stream = await openSse(`${node.http}/sse?channel=log:sse&token=${CLIENT_TOKEN}`);
    assert.equal(stream.status, 200);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    stream.close();
    const rejected = await openSse(`${node.http}/sse?channel=log:sse&token=${CLIENT_TOKEN}x`);
    assert.equal(rejected.status, 401);
    const admin = await openSse(`${node.http}/sse?channel=%24admin%3Astats&token=${ADMIN_TOKEN}`);
    assert.equal(admin.status, 200);
    admin.close();
    await waitUntil(() => capture.withMessage("connection closed").length === 3, 5_000, "three closed streams");
    await node.close();

    const opened = capture.withMessage("connection opened");
    assert.deepEqual(
      opened.map((line) => line.transport),
      ["sse", "sse", "admin"],
    );
    for (const line of opened) {
      assert.equal(typeof line.connection, "string");
      assert.equal(line.remote, "127.0.0.1");
    }
    // Streams may close in any order, so each close is matched to its open by connection id.
    const closed = opened.map((line) => capture.withMessage("connection closed").find((end) => end.connection === line.connection));
    assert.deepEqual(
      closed.map((line) => [line?.transport, line?.user, line?.reason]),
      [
        ["sse", "carol", "client_closed"],
        ["sse", undefined, "token_invalid"],
        ["admin", undefined, "client_closed"],
      ],
    );
    const authFailure = capture.withMessage("authentication failed")[0];
    assert.equal(authFailure.transport, "sse");
    assert.equal(authFailure.code, "token_invalid");
    assert.equal(authFailure.level, 30);

    const output = capture.text.join("");
    for (const secret of SECRETS) {
      assert.equal(output.includes(secret), false, `the log contains ${secret}`);
    }
  });

  test("malformed requests are logged at debug", async () => {
    const capture = new LogCapture();
    const node = await startHerald({ log: { level: "debug" } }, { logger: createLogger("debug", capture) });
    const attempts = 12;
    for (let i = 0; i < attempts; i++) {
      const response = await new Promise<string>((resolve, reject) => {
        const socket = connect(node.port, "127.0.0.1", () => socket.end("NOT HTTP AT ALL\r\n\r\n"));
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
          text += chunk;
        });
        socket.once("close", () => resolve(text));
        socket.once("error", reject);
      });
      assert.match(response, /^HTTP\/1\.1 400 Bad Request\r\n/);
    }
    await node.close();

    // The node's log limiter writes ten, then a summary of the rest.
    const malformed = capture.withMessage("malformed HTTP request rejected");
    assert.equal(malformed.length, 10);
    assert.equal(malformed[0].level, 20);
    assert.equal(typeof malformed[0].err.message, "string");
    const summary = capture.withMessage("repeated log lines suppressed").find((line) => line.repeated === "malformed HTTP request rejected");
    assert.equal(summary?.suppressed, attempts - 10);
  });

  test("level setting filters lines", async () => {
    const capture = new LogCapture();
    const node = await startHerald({ log: { level: "warn" } }, { logger: createLogger("warn", capture) });
    const client = await TestClient.open(node.ws);
    client.socket.close(1000);
    await client.closed;
    node.server.hub.onResync();
    await node.close();
    const lines = capture.lines();
    assert.ok(lines.length > 0);
    assert.ok(lines.every((line) => line.level >= 40), JSON.stringify(lines));
    assert.equal(capture.withMessage("connection opened").length, 0);
    assert.equal(capture.withMessage("broker reconnected; catching channels up from history").length, 1);
  });

  test("redaction hides credential fields", async () => {
    const capture = new LogCapture();
    const log = createLogger("info", capture);
    log.info({ token: CLIENT_TOKEN, config: { apiKeys: [API_KEY], adminToken: ADMIN_TOKEN }, headers: { authorization: `Bearer ${API_KEY}` } }, "object with credentials");
    await waitUntil(() => capture.text.length > 0, 2_000, "the log line");
    const [line] = capture.lines();
    assert.equal(line.token, "[redacted]");
    assert.equal(line.config.apiKeys, "[redacted]");
    assert.equal(line.config.adminToken, "[redacted]");
    assert.equal(line.headers.authorization, "[redacted]");
  });
});
