import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { HeraldEvents, type HeraldEvent } from "../events.js";
import { createLogger } from "../log.js";
import { LogLimiter } from "../log-limiter.js";
import { ConnectionMonitor } from "./connection-monitor.js";

function setup() {
  const lines: any[] = [];
  const log = createLogger(
    "debug",
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString().split("\n").filter((line) => line !== "").map((line) => JSON.parse(line)));
        callback();
      },
    }),
  );
  const events = new HeraldEvents();
  const seen: HeraldEvent[] = [];
  events.on((event) => seen.push(event));
  const monitor = new ConnectionMonitor({ log, events, logLimiter: new LogLimiter(log) }, "sse", "c-7", "127.0.0.1");
  return { lines, seen, monitor };
}

test("monitor logs and emits a rate-limit close", () => {
  const { lines, seen, monitor } = setup();
  monitor.identify("alice");
  monitor.rateLimited();
  monitor.closed(4029);

  assert.deepEqual(
    seen.map((event) => event.type),
    ["connection.opened", "rate_limited", "connection.closed"],
  );
  assert.deepEqual(seen[2], { type: "connection.closed", transport: "sse", connection: "c-7", code: 4029, reason: "rate_limited" });
  const line = lines.find((entry) => entry.msg === "rate-limited client closed");
  assert.ok(line, "no rate-limit log line");
  assert.equal(line.connection, "c-7");
  assert.equal(line.transport, "sse");
  assert.equal(line.user, "alice");
  assert.equal(line.remote, "127.0.0.1");
});

test("monitor sums drops while closing", () => {
  const { seen, monitor } = setup();
  monitor.drop("slow_consumer");
  monitor.drop("closing");
  monitor.drop("closing", 4);
  monitor.closed(undefined, "client_closed");
  monitor.closed(1000);

  const drops = seen.filter((event) => event.type === "drop");
  assert.deepEqual(drops, [
    { type: "drop", transport: "sse", reason: "slow_consumer", count: 1 },
    { type: "drop", transport: "sse", reason: "closing", count: 5 },
  ]);
  const closes = seen.filter((event) => event.type === "connection.closed");
  assert.equal(closes.length, 1);
  assert.equal(closes[0]!.type === "connection.closed" && closes[0]!.reason, "client_closed");
});

test("monitor reports failed authentication", () => {
  const { lines, seen, monitor } = setup();
  monitor.authFailed("token_expired");
  assert.deepEqual(seen[1], { type: "auth.failed", transport: "sse", code: "token_expired" });
  assert.equal(lines.find((entry) => entry.msg === "authentication failed")?.code, "token_expired");
});

test("monitor logs a stalled client", () => {
  const { lines, seen, monitor } = setup();
  monitor.stalled(4096);
  monitor.closed(undefined, "stalled");

  assert.deepEqual(
    seen.map((event) => event.type),
    ["connection.opened", "connection.closed"],
  );
  const line = lines.find((entry) => entry.msg === "stalled client closed");
  assert.ok(line, "no stalled log line");
  assert.equal(line.bufferedBytes, 4096);
  assert.equal(line.level, 30);
  assert.equal(line.connection, "c-7");
});
