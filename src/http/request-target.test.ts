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
    // A request path is appended to the origin, so a leading "//" stays part of the path.
    const expected = new URL(`http://herald.invalid${raw}`);
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

test("a target that starts with // is a path, not a host", () => {
  const target = RequestTarget.of("//api/publish?x=1");
  assert.equal(target.pathname, "//api/publish");
  assert.equal(target.url.host, "herald.invalid");
  assert.equal(target.url.searchParams.get("x"), "1");
});

test("an absolute-form target keeps its path", () => {
  assert.equal(RequestTarget.of("http://example.test/api/publish").pathname, "/api/publish");
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
