import assert from "node:assert/strict";
import { test } from "node:test";
import { ChannelPosition } from "./position.js";

test("position drops repeated offsets", () => {
  const position = new ChannelPosition({ epoch: "e1", offset: 3 });
  assert.equal(position.advance(2), false);
  assert.equal(position.advance(3), false);
  assert.equal(position.advance(4), true);
  assert.equal(position.advance(4), false);
  assert.equal(position.advance(6), true);
  assert.equal(position.advance(5), false);
  assert.deepEqual(position.position, { epoch: "e1", offset: 6 });
});

test("position without start accepts first event", () => {
  const position = new ChannelPosition();
  assert.equal(position.position, undefined);
  assert.equal(position.advance(7), true);
  assert.equal(position.advance(7), false);
  assert.equal(position.position?.offset, 7);
});

test("gap moves position to new epoch", () => {
  const position = new ChannelPosition({ epoch: "old", offset: 40 });
  position.moveTo({ epoch: "new", offset: 2 });
  assert.equal(position.advance(3), true);
  assert.deepEqual(position.position, { epoch: "new", offset: 3 });
});
