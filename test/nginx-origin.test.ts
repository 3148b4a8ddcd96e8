import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { renderDeployConfig } from "./support/deploy.js";
import { postJson, startHerald, TestClient } from "./support/herald.js";
import { startNginx } from "./support/nginx.js";
import { freePort } from "./support/ports.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Renders the single-node configuration for the node at `herald`, listening on `listen`. */
function singleNodeConfig(herald: number, listen: number): string {
  const shipped = readFileSync(new URL("../deploy/nginx/herald-sse.conf", import.meta.url), "utf8");
  return shipped.replace("server 127.0.0.1:8080;", `server 127.0.0.1:${herald};`).replace("listen 80;", `listen 127.0.0.1:${listen};`);
}

const CONFIGS: Array<{ name: string; render(herald: number, listen: number): string }> = [
  { name: "deploy/nginx/herald-sse.conf", render: singleNodeConfig },
  // All three upstream addresses lead to the one node.
  { name: "deploy/nginx/cluster.conf", render: (herald, listen) => renderDeployConfig("deploy/nginx/cluster.conf", listen, [herald, herald, herald]) },
];

for (const config of CONFIGS) {
  describe(`same-origin page behind ${config.name} on a non-default port`, () => {
    let node: Node;
    let nginx: Awaited<ReturnType<typeof startNginx>>;
    let base: string;

    before(async () => {
      node = await startHerald({ namespaces: { chat: { clientPublish: true } } });
      const port = await freePort();
      nginx = await startNginx(config.render(node.port, port), port);
      base = `http://127.0.0.1:${port}`;
    });

    after(async () => {
      await nginx.stop();
      await node.close();
    });

    test("client publish with the page's Origin", async () => {
      const { status, body } = await postJson(base, "/api/publish", { channel: "chat:lobby", data: "hi" }, { Origin: base });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.channel, "chat:lobby");
    });

    test("WebSocket upgrade with the page's Origin", async () => {
      const client = await TestClient.open(`${base.replace("http", "ws")}/ws`, { headers: { Origin: base } });
      const reply = await client.request({ type: "subscribe", channel: "chat:lobby" });
      assert.equal(reply.type, "reply", JSON.stringify(reply));
      client.close();
    });
  });
}
