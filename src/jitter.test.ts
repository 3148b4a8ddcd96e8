import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jitteredRetryAfterSeconds, jitteredRetryMs } from "./jitter.js";

describe("jitteredRetryMs", () => {
  test("stays within half and one and a half times the base", () => {
    for (let i = 0; i < 10_000; i++) {
      const value = jitteredRetryMs(2_000);
      assert.ok(value >= 1_000, `${value} is below 1000`);
      assert.ok(value <= 3_000, `${value} is above 3000`);
      assert.ok(Number.isInteger(value), `${value} is not a whole number`);
    }
  });

  test("reaches both bounds", () => {
    assert.equal(jitteredRetryMs(2_000, () => 0), 1_000);
    assert.equal(jitteredRetryMs(2_000, () => 1 - Number.EPSILON), 3_000);
    assert.equal(jitteredRetryMs(2_000, () => 0.5), 2_000);
  });

  test("spreads values across the range", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1_000; i++) {
      const bucket = Math.floor((jitteredRetryMs(2_000) - 1_000) / 100);
      seen.add(Math.min(bucket, 19));
    }
    // 1000 draws over 20 buckets of 100 ms: a bucket stays empty with odds near 1e-22 unless the spread is broken.
    assert.equal(seen.size, 20);
  });

  test("keeps odd and tiny bases in range", () => {
    assert.equal(jitteredRetryMs(0), 0);
    assert.equal(jitteredRetryMs(1, () => 0), 1);
    assert.equal(jitteredRetryMs(1, () => 0.999), 1);
    assert.equal(jitteredRetryMs(3, () => 0), 2);
    assert.equal(jitteredRetryMs(3, () => 0.999), 4);
  });

  test("rejects negative and non-finite bases", () => {
    assert.throws(() => jitteredRetryMs(-1), RangeError);
    assert.throws(() => jitteredRetryMs(Number.NaN), RangeError);
    assert.throws(() => jitteredRetryMs(Number.POSITIVE_INFINITY), RangeError);
  });
});

describe("jitteredRetryAfterSeconds", () => {
  test("returns whole seconds, at least 1", () => {
    assert.equal(jitteredRetryAfterSeconds(100, () => 0), 1);
    assert.equal(jitteredRetryAfterSeconds(4_000, () => 0), 2);
    assert.equal(jitteredRetryAfterSeconds(4_000, () => 1 - Number.EPSILON), 6);
  });
});
