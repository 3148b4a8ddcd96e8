import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "../src/broker/memory-broker.js";
import { decodeCursor } from "../src/cursor.js";
import { publish, startHerald } from "./support/herald.js";

const CAP = 200;
/** Channels per poll, the most one request may name. */
const PER_POLL = 128;

describe("long-poll of channels never published to", () => {
  const broker = new MemoryBroker({ readOnlyCap: CAP });
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({}, { broker });
  });

  after(async () => {
    await node.close();
  });

  async function poll(channels: string[], cursor?: string): Promise<any> {
    const params = new URLSearchParams(channels.map((channel) => ["channel", channel]));
    params.set("timeout", "0");
    if (cursor !== undefined) {
      params.set("cursor", cursor);
    }
    const response = await fetch(`${node.http}/poll?${params}`);
    assert.equal(response.status, 200);
    return response.json();
  }

  test("a flood of fresh names keeps the channel records at the cap", async () => {
    for (let round = 0; round < 40; round++) {
      const channels = Array.from({ length: PER_POLL }, (_, n) => `flood-${round}-${n}`);
      await poll(channels);
    }
    assert.equal(broker.channelRecords, CAP);
  });

  test("a resume on the epoch of an evicted record gets a gap notice", async () => {
    const first = await poll(["evicted"]);
    await poll(Array.from({ length: PER_POLL }, (_, n) => `evict-${n}`));
    await poll(Array.from({ length: PER_POLL }, (_, n) => `evict-more-${n}`));
    const published = await publish(node.http, "evicted", { n: 1 });

    const resumed = await poll(["evicted"], first.cursor);
    assert.deepEqual(resumed.events, []);
    assert.equal(resumed.gaps.length, 1);
    assert.equal(resumed.gaps[0].channel, "evicted");
    assert.equal(resumed.gaps[0].epoch, published.epoch);
    assert.equal(resumed.gaps[0].offset, published.offset);
    assert.notEqual(decodeCursor(first.cursor, ["evicted"]).get("evicted")?.epoch, published.epoch, "the record was evicted");
  });
});
