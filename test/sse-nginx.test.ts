import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { startHerald, TestClient } from "./support/herald.js";
import { startNginx } from "./support/nginx.js";
import { freePort } from "./support/ports.js";
import { openSse } from "./support/sse.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/**
 * The shipped configuration with the test's ports, a 2 s read timeout,
 * and gzip switched on for event streams around it, which the SSE
 * location must override.
 */
function nginxConfig(herald: number, listen: number): string {
  const shipped = readFileSync(new URL("../deploy/nginx/herald-sse.conf", import.meta.url), "utf8");
  const edited = shipped
    .replace("server 127.0.0.1:8080;", `server 127.0.0.1:${herald};`)
    .replace("listen 80;", `listen 127.0.0.1:${listen};`)
    .replaceAll("proxy_read_timeout 60s;", "proxy_read_timeout 2s;");
  assert.notEqual(edited.indexOf(`127.0.0.1:${herald}`), -1);
  assert.notEqual(edited.indexOf(`listen 127.0.0.1:${listen}`), -1);
  return `gzip on;\ngzip_min_length 1;\ngzip_types text/event-stream application/json;\n${edited}`;
}

describe("sse through nginx", () => {
  let node: Node;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  let base: string;

  before(async () => {
    node = await startHerald({ sse: { heartbeatMs: 500, retryMs: 100 } });
    const port = await freePort();
    nginx = await startNginx(nginxConfig(node.port, port), port);
    base = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await nginx.stop();
    await node.close();
  });

  test("one small event arrives at once", async () => {
    const stream = await openSse(`${base}/sse?channel=proxied`, { "Accept-Encoding": "gzip" });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["content-encoding"], undefined);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    await node.server.hub.publish("proxied", "1");
    await stream.recorder.waitForMessages(1);
    assert.deepEqual(stream.recorder.messages().map((message) => message.data), [1]);
    stream.close();
  });

  test("idle stream outlives the read timeout", async () => {
    const stream = await openSse(`${base}/sse?channel=idle`);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    let ended = false;
    void stream.ended.then(() => {
      ended = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    assert.equal(ended, false);
    assert.ok(stream.recorder.comments >= 4, `${stream.recorder.comments} heartbeats`);
    assert.equal(stream.recorder.named("subscribed").length, 1, "no reconnect happened");

    await node.server.hub.publish("idle", "\"still here\"");
    await stream.recorder.waitForMessages(1);
    assert.equal(stream.recorder.messages()[0]!.data, "still here");
    stream.close();
  });

  test("websocket passes the upgrade", async () => {
    const client = await TestClient.open(`${base.replace("http", "ws")}/ws`);
    const reply = await client.request({ type: "subscribe", channel: "proxied-ws" });
    assert.equal(reply.type, "reply");
    client.close();
  });
});
