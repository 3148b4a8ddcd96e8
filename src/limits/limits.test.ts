import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectionLimiter } from "./connection-limiter.js";
import { TokenBucket } from "./token-bucket.js";

test("token bucket allows a burst", () => {
  const bucket = new TokenBucket(1, 5);
  const taken = Array.from({ length: 10 }, () => bucket.take()).filter(Boolean).length;
  assert.equal(taken, 5);
});

test("connection limiter per address", () => {
  const limiter = new ConnectionLimiter(2);
  const first = limiter.acquire("10.0.0.1");
  const second = limiter.acquire("10.0.0.1");
  assert.ok(first);
  assert.ok(second);
  assert.equal(limiter.acquire("10.0.0.1"), undefined);
  assert.ok(limiter.acquire("10.0.0.2"));
  first();
  first();
  assert.equal(limiter.count("10.0.0.1"), 1, "a release counts once");
  assert.ok(limiter.acquire("10.0.0.1"));
});
