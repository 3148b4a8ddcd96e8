import assert from "node:assert/strict";
import { test } from "node:test";
import { HeraldError } from "./errors.js";
import { encodePublicationData, MAX_DATA_DEPTH } from "./publication-data.js";

test("data within the depth limit", () => {
  const value = JSON.parse(`${"[".repeat(MAX_DATA_DEPTH)}1${"]".repeat(MAX_DATA_DEPTH)}`) as unknown;
  assert.equal(encodePublicationData(value).length, MAX_DATA_DEPTH * 2 + 1);
  const text = '{"a":[1,{"b":null}],"__proto__":2}';
  assert.equal(encodePublicationData(JSON.parse(text)), text);
});

test("data nested too deep", () => {
  const depth = 50_000;
  const value = JSON.parse(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`) as unknown;
  assert.throws(() => encodePublicationData(value), (error: HeraldError) => error.code === "invalid_command");
});

test("data with a cycle", () => {
  const value: Record<string, unknown> = { a: [1] };
  (value.a as unknown[]).push(value);
  assert.throws(() => encodePublicationData(value), (error: HeraldError) => error.code === "invalid_command");
});

test("data of arrays and primitives", () => {
  for (const text of ["1", '"x"', "null", "[]", "{}", '[[1,[2]],{"a":[{"b":[]}]}]']) {
    assert.equal(encodePublicationData(JSON.parse(text)), text);
  }
});
