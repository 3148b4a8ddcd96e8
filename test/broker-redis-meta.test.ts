import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RedisBroker } from "../src/broker/redis/redis-broker.js";
import { RecordingListener } from "./support/broker-conformance.js";
import { startRedis, type RedisInstance } from "./support/redis.js";
import { redisBroker } from "./support/redis-broker.js";

const META_TTL_MS = 86_400_000;
const UNPUBLISHED_META_TTL_MS = 900;
const OPTIONS = { historySize: 10, historyTtlMs: 60_000 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("redis broker: meta of channels never published to", () => {
  let redis: RedisInstance;
  let broker: RedisBroker;

  before(async () => {
    redis = await startRedis();
    broker = redisBroker({ url: redis.url, metaTtlMs: META_TTL_MS, unpublishedMetaTtlMs: UNPUBLISHED_META_TTL_MS });
    await broker.start(new RecordingListener());
  });

  after(async () => {
    await broker.close();
    await redis.stop();
  });

  const pttl = (channel: string) => Number(redis.cli("PTTL", `herald-test:{${channel}}:meta`).trim());

  test("a read creates meta with the short TTL and a publish extends it", async () => {
    const read = await broker.history("read-then-publish", { since: 0, limit: 0 });
    const short = pttl("read-then-publish");
    assert.ok(short > 0, `PTTL ${short}`);
    assert.ok(short <= UNPUBLISHED_META_TTL_MS, `PTTL ${short}`);

    const published = await broker.publish("read-then-publish", "1", OPTIONS);
    assert.equal(published.epoch, read.epoch);
    assert.ok(pttl("read-then-publish") > UNPUBLISHED_META_TTL_MS * 100);

    await broker.history("read-then-publish", { since: 0, limit: 0 });
    assert.ok(pttl("read-then-publish") > UNPUBLISHED_META_TTL_MS * 100, "a later read does not shorten it");
  });

  test("meta that only reads created expires after the short TTL", async () => {
    const read = await broker.history("read-only", { since: 0, limit: 0 });
    await sleep(UNPUBLISHED_META_TTL_MS * 2);
    assert.equal(pttl("read-only"), -2, "the key is gone");
    const again = await broker.history("read-only", { since: 0, limit: 0 });
    assert.notEqual(again.epoch, read.epoch);
  });

  test("the node renews the meta of channels it subscribes to", async () => {
    await broker.subscribe("waiting");
    const read = await broker.history("waiting", { since: 0, limit: 0 });
    await sleep(UNPUBLISHED_META_TTL_MS * 3);
    assert.ok(pttl("waiting") > 0, "the meta is still there");
    const published = await broker.publish("waiting", "1", OPTIONS);
    assert.equal(published.epoch, read.epoch, "the waiting subscriber sees no new epoch");
    assert.equal(published.offset, 1);

    await broker.unsubscribe("waiting");
  });

  test("renewal never shortens the meta of a published channel", async () => {
    await broker.subscribe("busy");
    await broker.publish("busy", "1", OPTIONS);
    await broker.renewSubscribedMeta();
    assert.ok(pttl("busy") > UNPUBLISHED_META_TTL_MS * 100);
    await broker.unsubscribe("busy");
  });
});
