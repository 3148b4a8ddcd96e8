import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { publish, startHerald } from "./support/herald.js";
import { freePort, waitUntil } from "./support/ports.js";
import { startProcess, type Managed } from "./support/processes.js";

const BIN = fileURLToPath(new URL("../bin/herald.js", import.meta.url));

/** Returns the environment without HERALD_* variables, so the parent's settings do not leak in. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("HERALD_")) env[name] = value;
  }
  return { ...env, ...extra };
}

function herald(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Managed {
  return startProcess(process.execPath, [BIN, ...args], { env });
}

/** Runs the CLI to completion and returns its exit code and output. */
function run(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

/** Lines of a subscriber's stdout that are events. */
function events(output: string): any[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

function count(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

describe("herald client commands", () => {
  test("unknown flag exits 2", async () => {
    for (const command of ["publish", "subscribe"]) {
      const { code, stderr } = await run([command, "news", "--bogus", "1"]);
      assert.equal(code, 2, command);
      assert.match(stderr, /Unknown flag --bogus/, command);
    }
  });
});

describe("herald serve", () => {
  test("invalid --port exits non-zero naming the setting", async () => {
    const { code, stderr } = await run(["serve", "--port", "abc"]);
    assert.equal(code, 2);
    assert.match(stderr, /port \(from --port\): got "abc"/);
    assert.match(stderr, /expected number/);
  });

  test("invalid env setting exits non-zero naming the variable", async () => {
    const { code, stderr } = await run(["serve"], cleanEnv({ HERALD_WEBSOCKET_MISSED_PONGS: "zero" }));
    assert.equal(code, 2);
    assert.match(stderr, /websocket\.missedPongs \(from HERALD_WEBSOCKET_MISSED_PONGS\): got "zero"/);
  });

  test("port in use exits 1 with advice", async () => {
    const busy = await startHerald();
    try {
      const { code, stderr } = await run(["serve", "--port", String(busy.port), "--host", "127.0.0.1", "--log-level", "silent"]);
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${busy.port}: the port is already in use`));
      assert.match(stderr, /--port/);
    } finally {
      await busy.close();
    }
  });

  test("--help prints usage and exits 0", async () => {
    for (const [command, usage] of [
      ["serve", /herald serve \[--config FILE\]/],
      ["publish", /Usage: herald publish CHANNEL JSON/],
      ["subscribe", /Usage: herald subscribe CHANNEL/],
    ] as const) {
      for (const flag of ["--help", "-h"]) {
        const { code, stdout, stderr } = await run([command, flag]);
        assert.equal(code, 0, `${command} ${flag}: ${stderr}`);
        assert.match(stdout, usage, `${command} ${flag}`);
        assert.equal(stderr, "", `${command} ${flag}`);
      }
    }
  });

  test("admin token requirement without a token exits 2", async () => {
    const { code, stderr } = await run(["serve", "--port", "0", "--host", "127.0.0.1", "--set", "metrics.requireAdminToken=true"]);
    assert.equal(code, 2);
    assert.match(stderr, /metrics\.requireAdminToken/);
  });

  test("unknown command prints usage", async () => {
    const { code, stderr } = await run(["sever"]);
    assert.equal(code, 2);
    assert.match(stderr, /Unknown command "sever"/);
    assert.match(stderr, /herald serve/);
  });
});

describe("herald publish and subscribe", () => {
  let server: Managed;
  let port: number;

  before(async () => {
    port = await freePort();
    server = herald(["serve", "--port", String(port), "--host", "127.0.0.1", "--log-level", "warn"]);
    await waitUntil(
      () => fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false),
      10_000,
      "herald serve to be ready",
    );
  });

  after(async () => {
    const code = await server.stop("SIGTERM");
    assert.equal(code, 0, `herald serve exits 0 after SIGTERM; output:\n${server.output()}`);
  });

  test("subscribe prints what publish sends", async () => {
    const subscriber = herald(["subscribe", "news", "--url", `ws://127.0.0.1:${port}/ws`]);
    await waitUntil(() => /subscribed to news/.test(subscriber.output()), 10_000, "the subscribe reply");

    const first = await run(["publish", "news", '{"text":"hello"}', "--url", `http://127.0.0.1:${port}`]);
    assert.equal(first.code, 0, first.stderr);
    const reply = JSON.parse(first.stdout);
    assert.equal(reply.channel, "news");
    assert.equal(reply.offset, 1);
    const second = await run(["publish", "news", "[1,2]", "--url", `http://127.0.0.1:${port}`]);
    assert.equal(second.code, 0, second.stderr);

    await waitUntil(() => events(subscriber.output()).length === 2, 10_000, "two events printed");
    assert.deepEqual(events(subscriber.output()), [
      { channel: "news", offset: 1, data: { text: "hello" } },
      { channel: "news", offset: 2, data: [1, 2] },
    ]);

    const code = await subscriber.stop("SIGINT");
    assert.equal(code, 0, "subscribe exits 0 on Ctrl-C");
  });

  test("subscribe to an invalid channel exits 1", async () => {
    const { code, stderr } = await run(["subscribe", "bad channel", "--url", `ws://127.0.0.1:${port}/ws`]);
    assert.equal(code, 1);
    assert.match(stderr, /error invalid_channel/);
    assert.match(stderr, /not reconnecting/);
  });

  test("subscribe stops on a rejected upgrade", async () => {
    const started = Date.now();
    const { code, stderr } = await run(["subscribe", "news", "--url", `ws://127.0.0.1:${port}/`]);
    assert.equal(code, 1);
    assert.match(stderr, /rejected the WebSocket upgrade with HTTP 404 \(not_found: /);
    assert.match(stderr, /not reconnecting/);
    assert.doesNotMatch(stderr, /reconnecting in/);
    assert.ok(Date.now() - started < 15_000);
  });

  test("publish with invalid JSON exits 2", async () => {
    const { code, stderr } = await run(["publish", "news", "{text:hi}", "--url", `http://127.0.0.1:${port}`]);
    assert.equal(code, 2);
    assert.match(stderr, /not valid JSON/);
  });

  test("publish with an invalid channel prints the error and exits 1", async () => {
    const { code, stdout } = await run(["publish", "bad channel", "1", "--url", `http://127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.equal(JSON.parse(stdout).error.code, "invalid_channel");
  });

  test("publish to a closed port says where it failed", async () => {
    const closed = await freePort();
    const { code, stderr } = await run(["publish", "news", "1", "--url", `http://127.0.0.1:${closed}`]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`Publish to http://127\\.0\\.0\\.1:${closed}/api/publish failed`));
  });
});

describe("herald subscribe retries", () => {
  test("refused connection is retried with its cause", async () => {
    const closed = await freePort();
    const subscriber = herald(["subscribe", "news", "--url", `ws://127.0.0.1:${closed}/ws`]);
    await waitUntil(() => count(subscriber.output(), /reconnecting in/) >= 2, 10_000, "two reconnect attempts");
    assert.match(subscriber.output(), /disconnected \(1006: connect ECONNREFUSED 127\.0\.0\.1:\d+\); reconnecting in/);
    assert.equal(await subscriber.stop("SIGTERM"), 0);
  });

  test("server errors and 429 are retried", async () => {
    for (const status of [503, 429]) {
      let upgrades = 0;
      const rejecting = createServer((_request, response) => response.end());
      rejecting.on("upgrade", (_request, socket) => {
        upgrades++;
        socket.end(`HTTP/1.1 ${status} Busy\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
      });
      await new Promise<void>((resolve) => rejecting.listen(0, "127.0.0.1", resolve));
      const address = rejecting.address() as AddressInfo;
      const subscriber = herald(["subscribe", "news", "--url", `ws://127.0.0.1:${address.port}/ws`]);
      try {
        await waitUntil(() => upgrades >= 2, 10_000, `two upgrade attempts after ${status}`);
        assert.match(subscriber.output(), new RegExp(`HTTP ${status}\\); reconnecting in`));
        assert.equal(await subscriber.stop("SIGTERM"), 0);
      } finally {
        rejecting.closeAllConnections();
        await new Promise((resolve) => rejecting.close(resolve));
      }
    }
  });
});

describe("herald subscribe reconnect", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald();
  });

  after(async () => {
    await node.close();
  });

  test("resumes after the server drops the connection", async () => {
    const subscriber = herald(["subscribe", "feed", "--url", node.ws]);
    await waitUntil(() => count(subscriber.output(), /subscribed to feed/) === 1, 10_000, "the first subscribe");
    await publish(node.http, "feed", { n: 1 });
    await publish(node.http, "feed", { n: 2 });
    await waitUntil(() => events(subscriber.output()).length === 2, 10_000, "two events");

    // Cut every WebSocket from the server side, as a crashed proxy would (close code 1006).
    (node.server as unknown as { websocket: { destroy(): void } }).websocket.destroy();
    await publish(node.http, "feed", { n: 3 });
    await publish(node.http, "feed", { n: 4 });

    await waitUntil(() => count(subscriber.output(), /subscribed to feed/) === 2, 10_000, "the resubscribe");
    assert.match(subscriber.output(), /disconnected \(1006\); reconnecting/);
    await publish(node.http, "feed", { n: 5 });

    await waitUntil(() => events(subscriber.output()).length >= 5, 10_000, "five events");
    const printed = events(subscriber.output());
    assert.deepEqual(
      printed.map((event) => event.offset),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      printed.map((event) => event.data.n),
      [1, 2, 3, 4, 5],
    );
    assert.doesNotMatch(subscriber.output(), /gap:/);

    const code = await subscriber.stop("SIGTERM");
    assert.equal(code, 0);
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the subscription to end");
  });
});
