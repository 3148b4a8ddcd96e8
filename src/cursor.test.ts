import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamPosition } from "./broker/broker.js";
import { decodeCursor, encodeCursor, MAX_CURSOR_LENGTH } from "./cursor.js";
import { HeraldError } from "./errors.js";

function positions(entries: Record<string, StreamPosition>): Map<string, StreamPosition> {
  return new Map(Object.entries(entries));
}

function assertInvalid(cursor: string, channels: string[], message: RegExp): void {
  assert.throws(
    () => decodeCursor(cursor, channels),
    (error: unknown) => {
      assert.ok(error instanceof HeraldError);
      assert.equal(error.code, "invalid_cursor");
      assert.equal(error.status, 400);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe("cursor", () => {
  const channels = ["news", "chat:room", "alerts"];
  const sample = positions({
    news: { epoch: "abc123", offset: 42 },
    "chat:room": { epoch: "abc123", offset: 0 },
    alerts: { epoch: "zz9", offset: Number.MAX_SAFE_INTEGER },
  });

  test("round trip keeps every position", () => {
    const cursor = encodeCursor(channels, sample);
    assert.deepEqual(decodeCursor(cursor, channels), sample);
  });

  test("channel order does not matter", () => {
    const cursor = encodeCursor(channels, sample);
    assert.equal(encodeCursor([...channels].reverse(), sample), cursor);
    assert.deepEqual(decodeCursor(cursor, ["news", "alerts", "chat:room"]), sample);
  });

  test("cursor is short URL-safe ASCII", () => {
    const single = encodeCursor(["news"], positions({ news: { epoch: "k3j9x0", offset: 123_456 } }));
    assert.match(single, /^[0-9a-z.-]+$/);
    assert.ok(single.length <= 32, `single-channel cursor is ${single.length} characters`);
    assert.equal(encodeURIComponent(single), single);
  });

  test("shared epoch is written once", () => {
    const cursor = encodeCursor(["a", "b"], positions({ a: { epoch: "epoch1", offset: 1 }, b: { epoch: "epoch1", offset: 2 } }));
    assert.equal(cursor.split("epoch1").length - 1, 1);
    assert.deepEqual(decodeCursor(cursor, ["a", "b"]).get("b"), { epoch: "epoch1", offset: 2 });
  });

  test("encoding without a position throws", () => {
    assert.throws(() => encodeCursor(["a", "b"], positions({ a: { epoch: "e", offset: 1 } })), /No position for channel b/);
  });

  test("malformed cursors are rejected", () => {
    assertInvalid("", channels, /unsupported version/);
    assertInvalid("garbage", channels, /unsupported version/);
    assertInvalid("2.abc-1.xyz", ["news"], /unsupported version "2"/);
    assertInvalid("1", ["news"], /0 positions but the request names 1 channel\./);
    assertInvalid("1.abc-1.def-2.check", ["news"], /2 positions but the request names 1/);
  });

  test("truncated cursor is rejected", () => {
    const cursor = encodeCursor(channels, sample);
    for (let length = 1; length < cursor.length; length++) {
      assert.throws(() => decodeCursor(cursor.slice(0, length), channels), HeraldError, `prefix of ${length}`);
    }
  });

  test("altered cursor is rejected", () => {
    const cursor = encodeCursor(["news"], positions({ news: { epoch: "abc123", offset: 42 } }));
    const [version, entry, check] = cursor.split(".");
    assertInvalid(`${version}.abc123-2b.${check}`, ["news"], /check does not match/);
    assertInvalid(`${version}.abc124-${entry!.split("-")[1]}.${check}`, ["news"], /check does not match/);
  });

  test("cursor of other channels is rejected", () => {
    const cursor = encodeCursor(["news"], positions({ news: { epoch: "abc123", offset: 42 } }));
    assertInvalid(cursor, ["sports"], /belongs to other channels/);
    assertInvalid(cursor, ["news", "sports"], /1 position but the request names 2 channels\./);
  });

  test("entry with a valid check but bad fields is rejected", () => {
    // Encode positions the decoder must refuse, so the checksum matches.
    const badEpoch = encodeCursor(["news"], positions({ news: { epoch: "UPPER", offset: 1 } }));
    assertInvalid(badEpoch, ["news"], /position 1 is malformed/);
    const longEpoch = encodeCursor(["news"], positions({ news: { epoch: "e".repeat(17), offset: 1 } }));
    assertInvalid(longEpoch, ["news"], /position 1 is malformed/);
    const tooLong = encodeCursor(["news"], positions({ news: { epoch: "abc", offset: 2 ** 60 } }));
    assertInvalid(tooLong, ["news"], /position 1 is malformed/);
    const unsafe = encodeCursor(["news"], positions({ news: { epoch: "abc", offset: 2 ** 56 } }));
    assertInvalid(unsafe, ["news"], /position 1 has an offset out of range/);
    const noEpoch = `1.-1.${encodeCursor(["news"], positions({ news: { epoch: "abc", offset: 1 } })).split(".")[2]}`;
    assertInvalid(noEpoch, ["news"], /check does not match|malformed/);
  });

  test("oversized cursor is rejected before parsing", () => {
    assertInvalid(`1.${"a".repeat(MAX_CURSOR_LENGTH)}`, ["news"], new RegExp(`longer than ${MAX_CURSOR_LENGTH}`));
  });
});
