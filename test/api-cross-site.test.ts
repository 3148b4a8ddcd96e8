import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { startHerald } from "./support/herald.js";

const APP_ORIGIN = "https://app.example";

/** Sends a request with exactly these headers (Host included) and returns status and error code. */
function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; code: string | undefined }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const parsed = text === "" ? {} : (JSON.parse(text) as { error?: { code: string } });
        resolve({ status: res.statusCode ?? 0, code: parsed.error?.code });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const JSON_TYPE = { "Content-Type": "application/json" };

describe("keyless api from browsers", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  let body: (n: number) => string;

  before(async () => {
    node = await startHerald({ cors: { allowedOrigins: [APP_ORIGIN] } });
    body = (n) => JSON.stringify({ channel: "csrf", data: { n } });
  });

  after(async () => {
    await node.close();
  });

  test("unlisted origins are rejected", async () => {
    const host = `127.0.0.1:${node.port}`;
    const cases: Array<[string, Record<string, string>]> = [
      ["own host", { Host: host, Origin: `http://${host}` }],
      ["rebound host", { Host: `evil.example:${node.port}`, Origin: `http://evil.example:${node.port}` }],
      ["opaque origin", { Origin: "null" }],
      ["cross-site fetch", { "Sec-Fetch-Site": "cross-site" }],
      ["listed origin, cross-site", { Origin: APP_ORIGIN, "Sec-Fetch-Site": "cross-site" }],
    ];
    for (const [name, headers] of cases) {
      // A page is never a backend: its publish is a client's, which the default namespace refuses.
      const publish = await send(node.port, "POST", "/api/publish", { ...JSON_TYPE, ...headers }, body(1));
      assert.ok(publish.status === 401 || publish.status === 403, `publish: ${name} got ${publish.status}`);
      assert.ok(publish.code === "unauthorized" || publish.code === "origin_forbidden", `publish: ${name} got ${publish.code}`);
      const batch = await send(node.port, "POST", "/api/publish_batch", { ...JSON_TYPE, ...headers }, JSON.stringify({ items: [] }));
      assert.deepEqual(batch, { status: 403, code: "origin_forbidden" }, `batch: ${name}`);
      const history = await send(node.port, "GET", "/api/history?channel=csrf", headers);
      assert.deepEqual(history, { status: 403, code: "origin_forbidden" }, `history: ${name}`);
      const info = await send(node.port, "GET", "/api/info", headers);
      assert.deepEqual(info, { status: 403, code: "origin_forbidden" }, `info: ${name}`);
    }
    const history = await fetch(`${node.http}/api/history?channel=csrf`);
    assert.equal(history.status, 200);
    assert.equal(((await history.json()) as { top: number }).top, 0, "no page published");
  });

  test("listed origin and backends are served", async () => {
    const listed = await send(node.port, "POST", "/api/publish", { ...JSON_TYPE, Origin: APP_ORIGIN, "Sec-Fetch-Site": "same-site" }, body(2));
    assert.equal(listed.status, 200);
    const backend = await send(node.port, "POST", "/api/publish", JSON_TYPE, body(3));
    assert.equal(backend.status, 200);
    const info = await send(node.port, "GET", "/api/info", { Origin: APP_ORIGIN });
    assert.equal(info.status, 200);
  });

  test("post bodies must be json", async () => {
    const types = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp"];
    for (const type of types) {
      const publish = await send(node.port, "POST", "/api/publish", { "Content-Type": type }, body(4));
      assert.deepEqual(publish, { status: 415, code: "unsupported_media_type" }, type);
      const batch = await send(node.port, "POST", "/api/publish_batch", { "Content-Type": type }, JSON.stringify({ items: [] }));
      assert.deepEqual(batch, { status: 415, code: "unsupported_media_type" }, type);
    }
    const untyped = await send(node.port, "POST", "/api/publish", {}, body(5));
    assert.deepEqual(untyped, { status: 415, code: "unsupported_media_type" });

    const charset = await send(node.port, "POST", "/api/publish", { "Content-Type": "Application/JSON; charset=utf-8" }, body(6));
    assert.equal(charset.status, 200);
  });
});

describe("keyed api from browsers", () => {
  test("cross-site request with a key is served", async () => {
    const node = await startHerald({ apiKeys: ["browser-key"], cors: { allowedOrigins: [APP_ORIGIN] } });
    try {
      const headers = { ...JSON_TYPE, Authorization: "Bearer browser-key", Origin: APP_ORIGIN, "Sec-Fetch-Site": "cross-site" };
      const publish = await send(node.port, "POST", "/api/publish", headers, JSON.stringify({ channel: "keyed", data: 1 }));
      assert.equal(publish.status, 200);
    } finally {
      await node.close();
    }
  });
});
