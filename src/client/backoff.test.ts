import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "./backoff.js";

test("backoff stays within its bounds", () => {
  for (let attempt = 0; attempt < 20; attempt++) {
    const ceiling = Math.min(30_000, 500 * 2 ** (attempt + 1));
    assert.equal(backoffDelay(attempt, 500, 30_000, () => 0), 500, `attempt ${attempt} lowest`);
    assert.equal(backoffDelay(attempt, 500, 30_000, () => 1), ceiling, `attempt ${attempt} highest`);
  }
});

test("backoff ceiling doubles then caps", () => {
  const highest = (attempt: number) => backoffDelay(attempt, 100, 1_000, () => 1);
  assert.equal(highest(0), 200);
  assert.equal(highest(1), 400);
  assert.equal(highest(2), 800);
  assert.equal(highest(3), 1_000);
  assert.equal(highest(50), 1_000);
});

test("backoff jitter spreads delays", () => {
  const delays = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const delay = backoffDelay(4, 100, 10_000);
    assert.ok(delay >= 100, `delay ${delay} below the minimum`);
    assert.ok(delay <= 3_200, `delay ${delay} above the ceiling`);
    delays.add(delay);
  }
  assert.ok(delays.size > 50, `only ${delays.size} distinct delays in 200 draws`);
});

test("backoff with min above max", () => {
  assert.equal(backoffDelay(3, 5_000, 1_000, () => 0.5), 5_000);
});
