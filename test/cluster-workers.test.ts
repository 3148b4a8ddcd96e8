import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { publish, TestClient } from "./support/herald.js";
import { freePort, waitUntil } from "./support/ports.js";
import { startProcess, type Managed } from "./support/processes.js";
import { startRedis, type RedisInstance } from "./support/redis.js";

const BIN = fileURLToPath(new URL("../bin/herald.js", import.meta.url));

/** Returns the environment without HERALD_* variables, so the parent's settings do not leak in. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("HERALD_")) env[name] = value;
  }
  return env;
}

async function healthy(base: string): Promise<boolean> {
  try {
    return (await fetch(`${base}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

describe("serve --workers", () => {
  test("memory broker with 2 workers is rejected", async () => {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, "serve", "--workers", "2"], { env: cleanEnv(), timeout: 20_000 }, (error, _out, err) => {
        resolve({ code: typeof error?.code === "number" ? error.code : 0, stderr: err });
      });
    });
    assert.equal(code, 2);
    assert.match(stderr, /workers \(from --workers\): got 2/);
    assert.match(stderr, /needs broker redis/);
  });

  describe("on redis", () => {
    let redis: RedisInstance;
    let server: Managed;
    let base: string;
    let port: number;

    before(async () => {
      redis = await startRedis();
      port = await freePort();
      base = `http://127.0.0.1:${port}`;
      server = startProcess(
        process.execPath,
        [BIN, "serve", "--workers", "2", "--broker", "redis", "--redis-url", redis.url, "--port", String(port)],
        { env: { ...cleanEnv(), HERALD_HOST: "127.0.0.1", HERALD_NODE_ID: "bench", HERALD_LOG_LEVEL: "warn" } },
      );
      await waitUntil(() => healthy(base), 20_000, "two workers to serve /readyz");
    });

    after(async () => {
      await server?.stop("SIGKILL");
      await redis?.stop();
    });

    test("workers share the port and channels", async () => {
      const clients: TestClient[] = [];
      const nodes = new Set<string>();
      // The primary hands connections out round robin among the workers
      // that listen, so a few connections reach both once both started.
      for (let i = 0; i < 40 && nodes.size < 2; i++) {
        const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
        const reply = await client.request({ type: "connect" });
        nodes.add(reply.result.node);
        clients.push(client);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual([...nodes].sort(), ["bench-1", "bench-2"]);

      for (const client of clients) {
        const reply = await client.request({ type: "subscribe", channel: "news" });
        assert.equal(reply.type, "reply");
      }
      await publish(base, "news", { n: 1 });
      for (const client of clients) {
        const [event] = await client.waitForPubs("news", 1);
        assert.deepEqual(event, { type: "pub", channel: "news", offset: 1, data: { n: 1 } });
        client.close();
      }
    });

    test("SIGTERM drains every worker and exits 0", async () => {
      const code = await server.stop("SIGTERM");
      assert.equal(code, 0, server.output());
    });
  });
});
