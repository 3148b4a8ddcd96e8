import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { FlushQueue, textFrame } from "./websocket-frames.js";

interface FrameReceiver {
  on(event: "message", listener: (data: Buffer, isBinary: boolean) => void): void;
  write(chunk: Buffer): void;
}

// ws exports its frame parser at run time, but @types/ws does not declare it.
const { Receiver } = createRequire(import.meta.url)("ws") as {
  Receiver: new (options: { isServer: boolean }) => FrameReceiver;
};

/** Parses frames with ws's own receiver, so the framing is checked against a real implementation. */
function parse(frames: Buffer): Array<{ text: string; isBinary: boolean }> {
  const messages: Array<{ text: string; isBinary: boolean }> = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on("message", (data, isBinary) => messages.push({ text: data.toString(), isBinary }));
  receiver.write(frames);
  return messages;
}

test("textFrame encodes every length form", () => {
  for (const length of [0, 1, 125, 126, 65_535, 65_536, 70_000]) {
    const payload = Buffer.from("x".repeat(length));
    const messages = parse(textFrame(payload));
    assert.equal(messages.length, 1, `one message for length ${length}`);
    assert.equal(messages[0]!.isBinary, false, `text frame for length ${length}`);
    assert.equal(messages[0]!.text.length, length);
  }
});

test("textFrame frames concatenate into a stream", () => {
  const stream = Buffer.concat([textFrame(Buffer.from("a")), textFrame(Buffer.from("é"))]);
  assert.deepEqual(
    parse(stream).map((message) => message.text),
    ["a", "é"],
  );
});

test("FlushQueue flushes each target once per turn", async () => {
  const flushed: string[] = [];
  const queue = new FlushQueue(0);
  queue.add({ flush: () => flushed.push("a") });
  queue.add({ flush: () => flushed.push("b") });
  assert.deepEqual(flushed, []);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(flushed, ["a", "b"]);
  queue.add({ flush: () => flushed.push("c") });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(flushed, ["a", "b", "c"]);
});
