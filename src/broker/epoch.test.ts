import assert from "node:assert/strict";
import { test } from "node:test";
import { newEpoch } from "./epoch.js";

test("epochs are base-36 and distinct", () => {
  // 3,000 epochs draw the random pool about twelve times over.
  const epochs = Array.from({ length: 3_000 }, () => newEpoch());
  for (const epoch of epochs) {
    assert.match(epoch, /^[0-9a-z]{6}$/);
  }
  // Among 3,000 draws from 36^6 values, a repeat has a chance of about 1 in 500; two, of about 1 in 500,000.
  assert.ok(new Set(epochs).size >= 2_999, `only ${new Set(epochs).size} distinct epochs`);
  for (let i = 1; i < epochs.length; i++) {
    assert.notEqual(epochs[i], epochs[i - 1], `epoch ${i} repeats the one before`);
  }
});
