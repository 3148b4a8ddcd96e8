import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "./log.js";
import { LogLimiter } from "./log-limiter.js";

function capture() {
  const lines: any[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split("\n").filter((line) => line !== "").map((line) => JSON.parse(line)));
      callback();
    },
  });
  return { lines, log: createLogger("info", stream) };
}

test("limiter writes the first lines and counts the rest", () => {
  const { lines, log } = capture();
  const limiter = new LogLimiter(log, 3, 60_000);
  for (let i = 0; i < 8; i++) {
    limiter.write(log, "warn", { attempt: i }, "bad thing");
  }
  limiter.write(log, "info", {}, "other thing");
  assert.deepEqual(
    lines.map((line) => [line.msg, line.attempt]),
    [
      ["bad thing", 0],
      ["bad thing", 1],
      ["bad thing", 2],
      ["other thing", undefined],
    ],
  );

  limiter.close();
  const summary = lines[lines.length - 1];
  assert.equal(summary.msg, "repeated log lines suppressed");
  assert.equal(summary.repeated, "bad thing");
  assert.equal(summary.suppressed, 5);
  assert.equal(summary.level, 40);
  assert.equal(lines.filter((line) => line.msg === "repeated log lines suppressed").length, 1);
});

test("limiter starts over after the interval", async () => {
  const { lines, log } = capture();
  const limiter = new LogLimiter(log, 1, 50);
  limiter.write(log, "info", {}, "repeat");
  limiter.write(log, "info", {}, "repeat");
  await new Promise((resolve) => setTimeout(resolve, 120));
  limiter.write(log, "info", {}, "repeat");
  limiter.close();
  assert.deepEqual(
    lines.map((line) => line.msg),
    ["repeat", "repeated log lines suppressed", "repeat"],
  );
  assert.equal(lines[1].suppressed, 1);
});

test("limiter writes through a child logger", () => {
  const { lines, log } = capture();
  const limiter = new LogLimiter(log);
  limiter.write(log.child({ connection: "c-1" }), "info", { code: "token_invalid" }, "authentication failed");
  limiter.close();
  assert.equal(lines.length, 1);
  assert.equal(lines[0].connection, "c-1");
  assert.equal(lines[0].code, "token_invalid");
});
