import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { postJson, publish, startHerald, TestClient } from "./support/herald.js";

async function getJson(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  return { status: response.status, body: (await response.json()) as any, headers: response.headers };
}

describe("http api", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ limits: { maxBodyBytes: 1024, maxBatchItems: 5 } });
  });

  after(async () => {
    await node.close();
  });

  test("healthz reports the process state", async () => {
    const { status, body } = await getJson(`${node.http}/healthz`);
    assert.equal(status, 200);
    assert.equal(body.status, "ok");
    assert.equal(body.state, "running");
    assert.equal(body.connections.websocket, 0);
    assert.equal(body.connections.sse, 0);
  });

  test("readyz reports ready", async () => {
    const { status, body } = await getJson(`${node.http}/readyz`);
    assert.equal(status, 200);
    assert.deepEqual(body, { status: "ready" });
  });

  test("publish returns channel, epoch and offset", async () => {
    const first = await postJson(node.http, "/api/publish", { channel: "api", data: { a: 1 } });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(Object.keys(first.body).sort(), ["channel", "epoch", "offset"]);
    assert.equal(first.body.channel, "api");
    assert.match(first.body.epoch, /^[0-9a-z]+$/);
    assert.equal(first.body.offset, 1);
    const second = await postJson(node.http, "/api/publish", { channel: "api", data: null });
    assert.equal(second.body.offset, 2);
    assert.equal(second.body.epoch, first.body.epoch);
  });

  test("publish with the same idempotency key is stored once", async () => {
    const headers = { "Idempotency-Key": "order-17" };
    const first = await postJson(node.http, "/api/publish", { channel: "once", data: 1 }, headers);
    const retry = await postJson(node.http, "/api/publish", { channel: "once", data: 1 }, headers);
    assert.equal(first.status, 200);
    assert.deepEqual(retry.body, first.body);
    const inBody = await postJson(node.http, "/api/publish", { channel: "once", data: 2, idempotencyKey: "order-18" });
    assert.equal(inBody.body.offset, 2);
    const history = await getJson(`${node.http}/api/history?channel=once`);
    assert.equal(history.body.top, 2);
  });

  test("history returns kept events after since", async () => {
    for (const n of [1, 2, 3]) {
      await publish(node.http, "hist", { n });
    }
    const { status, body } = await getJson(`${node.http}/api/history?channel=hist&since=1&limit=1`);
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(body).sort(), ["channel", "earliest", "epoch", "publications", "top"]);
    assert.equal(body.channel, "hist");
    assert.equal(body.top, 3);
    assert.equal(body.earliest, 1);
    assert.deepEqual(body.publications, [{ offset: 2, data: { n: 2 } }]);

    const all = await getJson(`${node.http}/api/history?channel=hist`);
    assert.deepEqual(
      all.body.publications.map((publication: any) => publication.offset),
      [1, 2, 3],
    );
  });

  test("history of an unknown channel is empty", async () => {
    const { status, body } = await getJson(`${node.http}/api/history?channel=never`);
    assert.equal(status, 200);
    assert.equal(body.top, 0);
    assert.equal(body.earliest, 1);
    assert.deepEqual(body.publications, []);
  });

  test("history validates its query", async () => {
    const missing = await getJson(`${node.http}/api/history`);
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, "missing_channel");
    const badSince = await getJson(`${node.http}/api/history?channel=hist&since=-1`);
    assert.equal(badSince.status, 400);
    assert.equal(badSince.body.error.code, "bad_request");
    const badChannel = await getJson(`${node.http}/api/history?channel=a%20b`);
    assert.equal(badChannel.status, 400);
    assert.equal(badChannel.body.error.code, "invalid_channel");
  });

  test("history limit over 10000 is rejected", async () => {
    const over = await getJson(`${node.http}/api/history?channel=hist&limit=10001`);
    assert.equal(over.status, 400);
    assert.equal(over.body.error.code, "bad_request");
    assert.match(over.body.error.message, /at most 10000/);
    const most = await getJson(`${node.http}/api/history?channel=hist&limit=10000`);
    assert.equal(most.status, 200);

    const client = await TestClient.open(node.ws);
    const viaWebSocket = await client.request({ type: "history", channel: "hist", limit: 10001 });
    assert.equal(viaWebSocket.error.code, "invalid_command");
    client.close();
  });

  test("history since takes offsets up to 2^53-1", async () => {
    const largest = await getJson(`${node.http}/api/history?channel=hist&since=${Number.MAX_SAFE_INTEGER}`);
    assert.equal(largest.status, 200);
    assert.deepEqual(largest.body.publications, []);
    const over = await getJson(`${node.http}/api/history?channel=hist&since=${Number.MAX_SAFE_INTEGER + 1}`);
    assert.equal(over.status, 400);
    assert.equal(over.body.error.code, "bad_request");
  });

  test("publish_batch returns results in order", async () => {
    const items = [
      { channel: "batch-a", data: 1 },
      { channel: "batch-b", data: 2 },
      { channel: "batch-a", data: 3 },
    ];
    const { status, body } = await postJson(node.http, "/api/publish_batch", { items });
    assert.equal(status, 200);
    assert.equal(body.results.length, 3);
    assert.deepEqual(
      body.results.map((result: any) => [result.channel, result.offset]),
      [
        ["batch-a", 1],
        ["batch-b", 1],
        ["batch-a", 2],
      ],
    );
    const history = await getJson(`${node.http}/api/history?channel=batch-a`);
    assert.deepEqual(
      history.body.publications.map((publication: any) => publication.data),
      [1, 3],
    );
  });

  test("publish_batch with an invalid item publishes nothing", async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ items: [{ channel: "batch-c", data: 1 }, { channel: "bad channel", data: 2 }] }, "invalid_channel", /Item 1/],
      [{ items: [{ channel: "batch-c", data: 1 }, { channel: "batch-c" }] }, "invalid_command", /Item 1/],
      [{ items: "nope" }, "invalid_command", /items/],
      [{ items: Array.from({ length: 6 }, () => ({ channel: "batch-c", data: 0 })) }, "payload_too_large", /6 items/],
    ];
    for (const [body, code, message] of cases) {
      const response = await postJson(node.http, "/api/publish_batch", body);
      assert.equal(response.body.error?.code, code, JSON.stringify(body).slice(0, 80));
      assert.match(response.body.error.message, message);
      assert.equal(response.status, code === "payload_too_large" ? 413 : 400);
    }
    const history = await getJson(`${node.http}/api/history?channel=batch-c`);
    assert.equal(history.body.top, 0, "no item of a rejected batch was published");
  });

  test("publish rejects invalid bodies", async () => {
    const cases: Array<[unknown, number, string]> = [
      ["{oops", 400, "invalid_json"],
      ["", 400, "invalid_json"],
      [{ data: 1 }, 400, "invalid_command"],
      [{ channel: "api" }, 400, "invalid_command"],
      [{ channel: "a b", data: 1 }, 400, "invalid_channel"],
      [{ channel: "api", data: 1, idempotencyKey: "" }, 400, "invalid_command"],
    ];
    for (const [body, status, code] of cases) {
      const response = await postJson(node.http, "/api/publish", body);
      assert.equal(response.status, status, JSON.stringify(body));
      assert.equal(response.body.error.code, code, JSON.stringify(body));
      assert.equal(typeof response.body.error.message, "string");
    }
  });

  test("empty body distinct from invalid JSON", async () => {
    for (const body of ["", " \n\t"]) {
      const response = await postJson(node.http, "/api/publish", body);
      assert.equal(response.body.error.code, "invalid_json", JSON.stringify(body));
      assert.match(response.body.error.message, /body is empty/, JSON.stringify(body));
    }
    const invalid = await postJson(node.http, "/api/publish", " {oops");
    assert.equal(invalid.body.error.code, "invalid_json");
    assert.match(invalid.body.error.message, /not valid JSON/);
  });

  test("body over the limit is a 413", async () => {
    const big = { channel: "api", data: "x".repeat(2048) };
    const response = await postJson(node.http, "/api/publish", big);
    assert.equal(response.status, 413);
    assert.equal(response.body.error.code, "payload_too_large");
  });

  test("chunked body over the limit is a 413", async () => {
    // No Content-Length: the limit must hold while the body streams in.
    const { status, body } = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(`${node.http}/api/publish`, { method: "POST", headers: { "Content-Type": "application/json" } }, (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      for (let i = 0; i < 8; i++) {
        req.write("x".repeat(512));
      }
      req.end();
    });
    assert.equal(status, 413);
    assert.equal(body.error.code, "payload_too_large");
  });

  test("wrong method is a 405 and unknown path a 404", async () => {
    const get = await getJson(`${node.http}/api/publish`);
    assert.equal(get.status, 405);
    assert.equal(get.body.error.code, "method_not_allowed");
    const missing = await getJson(`${node.http}/nowhere`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "not_found");
  });

  test("a path that starts with // is a path, not a host", async () => {
    const { status, body } = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: node.port, method: "POST", path: "//api/publish", headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (text += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ channel: "slashes", data: 1 }));
    });
    assert.equal(status, 404);
    assert.equal(body.error.code, "not_found");
    assert.match(body.error.message, /No endpoint at \/\/api\/publish/);
  });
});

describe("http api with an API key", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ apiKeys: ["secret-one", "secret-two"] });
  });

  after(async () => {
    await node.close();
  });

  test("missing or wrong key is a 401", async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { Authorization: "Bearer wrong" },
      { Authorization: "Bearer secret-on" },
      { Authorization: "Basic secret-one" },
    ];
    for (const headers of cases) {
      const response = await postJson(node.http, "/api/publish", { channel: "k", data: 1 }, headers);
      assert.equal(response.status, 401, JSON.stringify(headers));
      assert.equal(response.body.error.code, "unauthorized");
      const history = await getJson(`${node.http}/api/history?channel=k`, headers);
      assert.equal(history.status, 401);
    }
  });

  test("any configured key is accepted", async () => {
    for (const key of ["secret-one", "secret-two"]) {
      const response = await postJson(node.http, "/api/publish", { channel: "k", data: 1 }, { Authorization: `Bearer ${key}` });
      assert.equal(response.status, 200);
    }
    const history = await getJson(`${node.http}/api/history?channel=k`, { Authorization: "bearer secret-two" });
    assert.equal(history.status, 200);
    assert.equal(history.body.top, 2);
  });
});

describe("http api while draining", () => {
  test("readyz turns 503 when shutdown starts", async () => {
    const node = await startHerald({ drain: { delayMs: 300 } });
    const closing = node.close();
    const { status, body } = await getJson(`${node.http}/readyz`);
    assert.equal(status, 503);
    assert.equal(body.error.code, "draining");
    const health = await getJson(`${node.http}/healthz`);
    assert.equal(health.status, 200);
    await closing;
  });
});
