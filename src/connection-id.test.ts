import assert from "node:assert/strict";
import { test } from "node:test";
import { connectionId } from "./connection-id.js";

test("connectionId is a random UUID", () => {
  const first = connectionId();
  const second = connectionId();
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(first, second);
});
