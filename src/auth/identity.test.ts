import assert from "node:assert/strict";
import { test } from "node:test";
import type { Namespace } from "../channel.js";
import { HeraldError } from "../errors.js";
import { ANONYMOUS, checkPublish, checkSubscribe, matchesChannel, type Identity } from "./identity.js";

const closed: Namespace = { name: "", historySize: 1, historyTtlMs: 1, anonymousSubscribe: false, clientPublish: false, presence: false };
const open: Namespace = { ...closed, anonymousSubscribe: true, clientPublish: true };
const alice: Identity = { user: "alice", anonymous: false, subscribe: ["user:alice", "room:*:public"], publish: ["chat:*"], expiresAt: undefined };

test("channel patterns", () => {
  assert.equal(matchesChannel(["user:alice"], "user:alice"), true);
  assert.equal(matchesChannel(["user:alice"], "user:alicex"), false);
  assert.equal(matchesChannel(["user:*"], "user:"), true);
  assert.equal(matchesChannel(["room:*:public"], "room:1:public"), true);
  assert.equal(matchesChannel(["room:*:public"], "room:1:private"), false);
  assert.equal(matchesChannel(["*"], "anything"), true);
  assert.equal(matchesChannel(["a*b*c"], "aXbYc"), true);
  assert.equal(matchesChannel(["a*b*c"], "aXbY"), false);
  assert.equal(matchesChannel(["user.*"], "userX"), false, "a dot is literal");
  assert.equal(matchesChannel([], "user:alice"), false);
});

test("pathological pattern runs fast", () => {
  // A regular expression built from this pattern would backtrack exponentially.
  const pattern = `${"a*".repeat(30)}b`;
  assert.equal(matchesChannel([pattern], "a".repeat(200)), false);
});

test("subscribe rights", () => {
  checkSubscribe(alice, closed, "user:alice");
  checkSubscribe(ANONYMOUS, open, "user:bob");
  assert.throws(() => checkSubscribe(alice, closed, "user:bob"), (error: HeraldError) => error.code === "forbidden");
  assert.throws(() => checkSubscribe(ANONYMOUS, closed, "user:alice"), (error: HeraldError) => error.code === "forbidden");
});

test("publish rights", () => {
  checkPublish(alice, closed, "chat:1");
  checkPublish(alice, { ...closed, clientPublish: true }, "user:alice");
  assert.throws(() => checkPublish(alice, closed, "user:alice"), (error: HeraldError) => error.code === "publish_forbidden");
  assert.throws(
    () => checkPublish(ANONYMOUS, { ...closed, clientPublish: true }, "news"),
    (error: HeraldError) => error.code === "publish_forbidden",
  );
  checkPublish(ANONYMOUS, open, "news");
});
