import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { publish, startHerald, TestClient } from "./support/herald.js";

/** Publishes `count` events numbered from `from` and returns the last reply. */
async function publishMany(base: string, channel: string, from: number, count: number) {
  let last = { epoch: "", offset: 0 };
  for (let n = from; n < from + count; n++) {
    last = await publish(base, channel, { n });
  }
  return last;
}

describe("websocket resume", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ namespaces: { small: { historySize: 5 }, big: { historySize: 1000 } } });
  });

  after(async () => {
    await node.close();
  });

  test("resume from last offset gets exactly the missed events", async () => {
    const channel = "resume";
    await publishMany(node.http, channel, 1, 3);
    const first = await TestClient.open(node.ws);
    const reply = await first.request({ type: "subscribe", channel });
    await publishMany(node.http, channel, 4, 2);
    const seen = await first.waitForPubs(channel, 2);
    const last = { epoch: reply.result.epoch, offset: seen[seen.length - 1].offset };
    assert.equal(last.offset, 5);
    first.close();
    await first.closed;

    await publishMany(node.http, channel, 6, 50);

    const second = await TestClient.open(node.ws);
    const resumed = await second.request({ type: "subscribe", channel, since: last });
    assert.deepEqual(resumed.result, { channel, epoch: last.epoch, offset: 5, recovered: true });
    const missed = await second.waitForPubs(channel, 50);
    assert.deepEqual(
      missed.map((event) => event.offset),
      Array.from({ length: 50 }, (_, i) => i + 6),
    );
    assert.deepEqual(
      missed.map((event) => event.data.n),
      Array.from({ length: 50 }, (_, i) => i + 6),
    );

    await publish(node.http, channel, { n: 56 });
    const all = await second.waitForPubs(channel, 51);
    assert.equal(all.length, 51, "no event arrives twice");
    assert.equal(all[50].offset, 56);
    assert.equal(second.messages.some((message) => message.type === "gap"), false);
    second.close();
  });

  test("resume during concurrent publishes misses nothing", async () => {
    const channel = "big:busy";
    const first = await publish(node.http, channel, { n: 1 });
    let publishing = true;
    const publisher = (async () => {
      for (let n = 2; n <= 400; n++) {
        await publish(node.http, channel, { n });
      }
      publishing = false;
    })();

    // Subscribers join at different moments while events keep arriving.
    const clients: TestClient[] = [];
    while (publishing && clients.length < 8) {
      const client = await TestClient.open(node.ws);
      const reply = await client.request({ type: "subscribe", channel, since: { epoch: first.epoch, offset: 1 } });
      assert.equal(reply.result.recovered, true);
      clients.push(client);
    }
    await publisher;
    assert.ok(clients.length >= 2, `only ${clients.length} clients joined while publishing`);

    for (const client of clients) {
      const events = await client.waitForPubs(channel, 399);
      assert.deepEqual(
        events.map((event) => event.offset),
        Array.from({ length: 399 }, (_, i) => i + 2),
      );
      client.close();
    }
  });

  test("resume of a quiet channel after its last subscriber left", async () => {
    const channel = "quiet";
    const first = await TestClient.open(node.ws);
    const reply = await first.request({ type: "subscribe", channel });
    assert.equal(reply.result.offset, 0);
    first.close();
    await first.closed;

    await publishMany(node.http, channel, 1, 3);

    const second = await TestClient.open(node.ws);
    const resumed = await second.request({ type: "subscribe", channel, since: { epoch: reply.result.epoch, offset: 0 } });
    assert.equal(resumed.result.recovered, true);
    const events = await second.waitForPubs(channel, 3);
    assert.deepEqual(
      events.map((event) => event.offset),
      [1, 2, 3],
    );
    second.close();
  });

  test("resume older than history gets a gap, then live events", async () => {
    const channel = "small:feed";
    const first = await publish(node.http, channel, { n: 1 });
    await publishMany(node.http, channel, 2, 9);

    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel, since: { epoch: first.epoch, offset: 1 } });
    assert.equal(reply.type, "reply");
    assert.equal(reply.result.recovered, false);
    assert.equal(reply.result.epoch, first.epoch);
    assert.equal(reply.result.offset, 10, "delivery continues after the newest offset");
    const gap = await client.waitFor((message) => message.type === "gap");
    assert.deepEqual(gap, { type: "gap", channel, epoch: first.epoch, offset: 10 });
    assert.equal(client.pubs(channel).length, 0, "no partial history is sent after a gap");

    await publish(node.http, channel, { n: 11 });
    const [event] = await client.waitForPubs(channel, 1);
    assert.equal(event.offset, 11);
    assert.deepEqual(event.data, { n: 11 });
    client.close();
  });

  test("resume with another epoch gets a gap, then live events", async () => {
    const channel = "epochs";
    await publishMany(node.http, channel, 1, 3);

    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel, since: { epoch: "zzzzzz", offset: 2 } });
    assert.equal(reply.result.recovered, false);
    assert.notEqual(reply.result.epoch, "zzzzzz");
    const gap = await client.waitFor((message) => message.type === "gap");
    assert.equal(gap.channel, channel);
    assert.equal(gap.epoch, reply.result.epoch);
    assert.equal(gap.offset, 3);

    await publish(node.http, channel, { n: 4 });
    const [event] = await client.waitForPubs(channel, 1);
    assert.equal(event.offset, 4);
    client.close();
  });

  test("resume beyond the newest offset is invalid_position", async () => {
    const channel = "ahead";
    const last = await publishMany(node.http, channel, 1, 2);
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel, since: { epoch: last.epoch, offset: 9 } });
    assert.equal(reply.type, "error");
    assert.equal(reply.error.code, "invalid_position");

    const retry = await client.request({ type: "subscribe", channel });
    assert.equal(retry.type, "reply", "a failed subscribe leaves the channel free");
    client.close();
  });

  test("session id restores subscriptions and missed events", async () => {
    const channel = "session";
    const first = await TestClient.open(node.ws);
    const connected = await first.request({ type: "connect" });
    const session = connected.result.session;
    assert.equal(typeof session, "string");
    await first.request({ type: "subscribe", channel });
    await publishMany(node.http, channel, 1, 2);
    await first.waitForPubs(channel, 2);
    first.close();
    await first.closed;

    await publishMany(node.http, channel, 3, 4);

    const second = await TestClient.open(node.ws);
    const restored = await second.request({ type: "connect", session });
    assert.equal(restored.result.session, session);
    assert.equal(restored.result.restored.length, 1);
    assert.equal(restored.result.restored[0].channel, channel);
    assert.equal(restored.result.restored[0].recovered, true);
    assert.equal(restored.result.restored[0].offset, 2);
    assert.equal(typeof restored.result.restored[0].epoch, "string");
    const missed = await second.waitForPubs(channel, 4);
    assert.deepEqual(
      missed.map((event) => event.offset),
      [3, 4, 5, 6],
    );

    await publish(node.http, channel, { n: 7 });
    const all = await second.waitForPubs(channel, 5);
    assert.equal(all[4].offset, 7);

    const again = await second.request({ type: "subscribe", channel });
    assert.equal(again.error.code, "already_subscribed", "the restored subscription is live");
    second.close();
  });

  test("unknown session id starts a new session", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "connect", session: "no-such-session" });
    assert.equal(reply.type, "reply");
    assert.notEqual(reply.result.session, "no-such-session");
    assert.deepEqual(reply.result.restored, []);
    client.close();
  });
});
