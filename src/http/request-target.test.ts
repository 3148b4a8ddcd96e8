import assert from "node:assert/strict";
import { test } from "node:test";
import { HeraldError } from "../errors.js";
import { RequestTarget } from "./request-target.js";

test("request target pathname matches URL parser", () => {
  const targets = [
    "/",
    "/api/publish",
    "/a//b",
    "/a/./b",
    "/a/../api/publish",
    "/%61pi/publish",
    "/api\\publish",
    "/sse?channel=a&channel=b",
    "/poll#x",
    "//evil.example/api/publish",
    "/app.js",
    "/é",
  ];
  for (const raw of targets) {
    const expected = new URL(raw, "http://herald.invalid");
    const target = RequestTarget.of(raw);
    assert.equal(target.pathname, expected.pathname, raw);
    assert.equal(target.url.href, expected.href, raw);
  }
});

test("request target reads query lazily", () => {
  const target = RequestTarget.of("/sse?channel=a&channel=b");
  assert.deepEqual(target.url.searchParams.getAll("channel"), ["a", "b"]);
  assert.equal(RequestTarget.of("/api/history").url.search, "");
});

test("request target without url", () => {
  assert.equal(RequestTarget.of(undefined).pathname, "/");
});

test("request target rejects invalid URL", () => {
  assert.throws(
    () => RequestTarget.of("http://[::1"),
    (error: HeraldError) => error.code === "bad_request",
  );
});
