import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EventSource } from "eventsource";
import { encodeCursor } from "../src/cursor.js";
import { publishWithKey, upgradeStatus } from "./support/auth-probes.js";
import { startHerald } from "./support/herald.js";
import { freePort, waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";
import { openSse, type SseResponse } from "./support/sse.js";
import { HMAC_SECRET, makeKeyPair, signToken } from "./support/tokens.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

const APP_ORIGIN = "https://app.example";
const ADDRESS = "127.0.0.1";

async function subscribed(stream: SseResponse): Promise<SseResponse> {
  await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1, 10_000, "the subscribed event");
  return stream;
}

describe("sse origins", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ cors: { allowedOrigins: [APP_ORIGIN] } });
  });

  after(async () => {
    await node.close();
  });

  test("foreign origin gets 403 origin_forbidden", async () => {
    for (const origin of ["https://evil.example", "null", "https://app.example.evil.example"]) {
      const response = await fetch(`${node.http}/sse?channel=cors`, { headers: { Origin: origin } });
      assert.equal(response.status, 403, origin);
      assert.equal(response.headers.get("access-control-allow-origin"), null, origin);
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, "origin_forbidden", origin);
    }
    const preflight = await fetch(`${node.http}/sse?channel=cors`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "GET" },
    });
    assert.equal(preflight.status, 403);
    assert.equal(node.server.hub.subscriptionCount, 0);
    assert.equal(node.server.limiter.count(ADDRESS), 0);
  });

  test("allowed origin is served", async () => {
    const stream = await subscribed(await openSse(`${node.http}/sse?channel=cors`, { Origin: APP_ORIGIN }));
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["access-control-allow-origin"], APP_ORIGIN);
    assert.equal(stream.headers["vary"], "Origin");
    assert.equal(stream.headers["content-type"], "text/event-stream");
    await node.server.hub.publish("cors", JSON.stringify({ n: 1 }));
    await stream.recorder.waitForMessages(1);
    stream.close();

    const sameOrigin = await subscribed(await openSse(`${node.http}/sse?channel=cors`, { Origin: node.http }));
    assert.equal(sameOrigin.status, 200);
    sameOrigin.close();
  });

  test("allowed preflight lists the resume header", async () => {
    const preflight = await fetch(`${node.http}/sse?channel=cors`, {
      method: "OPTIONS",
      headers: { Origin: APP_ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "last-event-id" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /GET/);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /Last-Event-ID/);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /Authorization/);
  });
});

describe("sse connections per address", () => {
  const LIMIT = 20;
  let node: Node;

  before(async () => {
    node = await startHerald({ sse: { retryMs: 100 }, limits: { maxConnectionsPerIp: LIMIT } });
  });

  after(async () => {
    await node.close();
  });

  test("stream over the limit gets 200, retry and an end", async () => {
    const open = await Promise.all(Array.from({ length: LIMIT }, () => openSse(`${node.http}/sse?channel=limit`).then(subscribed)));
    assert.equal(node.server.limiter.count(ADDRESS), LIMIT);

    const refused = await openSse(`${node.http}/sse?channel=limit`);
    await refused.ended;
    assert.equal(refused.status, 200);
    assert.equal(refused.headers["content-type"], "text/event-stream");
    assert.equal(refused.recorder.events.length, 0);
    assert.equal(refused.recorder.retries.length, 1);
    const retry = refused.recorder.retries[0]!;
    assert.ok(retry >= 100, `retry ${retry} is at least retryMs`);
    assert.ok(retry <= 500, `retry ${retry} is at most five times retryMs`);
    assert.match(refused.recorder.text, /^: too_many_connections\n/);
    assert.equal(node.server.limiter.count(ADDRESS), LIMIT);

    // A WebSocket from the same address is refused too: the count is shared.
    const upgrade = await upgradeStatus(node.ws);
    assert.equal(upgrade.status, 429);
    assert.equal(upgrade.code, "too_many_connections");

    open.pop()!.close();
    await waitUntil(() => node.server.limiter.count(ADDRESS) === LIMIT - 1, 5_000, "the closed stream to be released");
    const again = await subscribed(await openSse(`${node.http}/sse?channel=limit`));
    assert.equal(node.server.limiter.count(ADDRESS), LIMIT);
    again.close();
    open.forEach((stream) => stream.close());
    await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "every stream to be released");
  });

  test("1,000 open and close cycles leave no count", async () => {
    const { epoch } = await node.server.hub.publish("cycle", "1");
    const stale = encodeCursor(["cycle"], new Map([["cycle", { epoch, offset: 99 }]]));
    let opened = 0;
    for (let cycle = 0; cycle < 1_000; cycle += LIMIT) {
      const batch = Array.from({ length: LIMIT }, async (_, i): Promise<void> => {
        switch ((cycle + i) % 4) {
          case 0: {
            // Rejected after its slot was taken: a cursor beyond the newest event.
            const response = await fetch(`${node.http}/sse?channel=cycle`, { headers: { "Last-Event-ID": stale } });
            assert.equal(response.status, 400);
            await response.body?.cancel();
            return;
          }
          case 1: {
            // Cut by the client before it reads anything.
            const stream = await openSse(`${node.http}/sse?channel=cycle`);
            stream.close();
            await stream.ended;
            return;
          }
          default: {
            const stream = await subscribed(await openSse(`${node.http}/sse?channel=cycle&channel=cycle${i % 3}`));
            opened++;
            stream.close();
            await stream.ended;
          }
        }
      });
      await Promise.all(batch);
    }
    assert.equal(opened, 500);
    await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "the count to return to zero");
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the subscriptions to be released");
    const last = await subscribed(await openSse(`${node.http}/sse?channel=cycle`));
    assert.equal(node.server.limiter.count(ADDRESS), 1);
    last.close();
    await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "the last stream to be released");
  });
});

describe("sse tokens", () => {
  const API_KEY = "api-key-for-sse-expiry";
  let node: Node;

  before(async () => {
    node = await startHerald({
      apiKeys: [API_KEY],
      sse: { retryMs: 100 },
      auth: { hmacSecret: HMAC_SECRET, clockSkewMs: 0 },
    });
  });

  after(async () => {
    await node.close();
  });

  /** Opens an EventSource that records the status of each request and the events it gets. */
  function recordedSource(url: string) {
    const statuses: number[] = [];
    const source = new EventSource(url, {
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        statuses.push(response.status);
        return response;
      },
    });
    const closes: Array<{ error: { code: string; message: string } }> = [];
    const received: Array<{ id: string; offset: number }> = [];
    source.addEventListener("close", (event) => closes.push(JSON.parse(event.data)));
    source.addEventListener("message", (event) => received.push({ id: event.lastEventId, offset: JSON.parse(event.data).offset }));
    return { source, statuses, closes, received };
  }

  test("token is read like on every transport", async () => {
    const token = await signToken(HMAC_SECRET, { claims: { channels: ["feed"] } });
    const cases: Array<[string, string, Record<string, string>, number, string]> = [
      ["another scheme", "/sse?channel=feed", { Authorization: `Basic ${token}` }, 401, "token_malformed"],
      ["repeated parameter", `/sse?channel=feed&token=${token}&token=${token}`, {}, 400, "bad_request"],
      ["repeated lastEventId", "/sse?channel=feed&lastEventId=a&lastEventId=b", {}, 400, "bad_request"],
      ["expired", `/sse?channel=feed&token=${await signToken(HMAC_SECRET, { expiresIn: -60 })}`, {}, 401, "token_expired"],
    ];
    for (const [name, path, headers, status, code] of cases) {
      const response = await fetch(node.http + path, { headers });
      assert.equal(response.status, status, name);
      assert.equal(((await response.json()) as { error: { code: string } }).error.code, code, name);
    }
    const served = await subscribed(await openSse(`${node.http}/sse?channel=feed`, { Authorization: `Bearer ${token}` }));
    served.close();
    await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "every request to be released");
  });

  test("expired stream ends and EventSource stops", async () => {
    const expiredCloses = async () =>
      sample(await scrape(node.http), "herald_connections_closed_total", { transport: "sse", reason: "token_expired" });
    const closedBefore = await expiredCloses();
    const token = await signToken(HMAC_SECRET, { expiresIn: 2, claims: { channels: ["feed"] } });
    const { source, statuses, closes } = recordedSource(`${node.http}/sse?channel=feed&token=${token}`);
    try {
      await waitUntil(() => closes.length === 1, 10_000, "the close event");
      assert.equal(closes[0]!.error.code, "token_expired");
      assert.equal(typeof closes[0]!.error.message, "string");
      // Left alone, EventSource reconnects once with the same token, gets 401 and stops for good.
      await waitUntil(() => source.readyState === EventSource.CLOSED, 5_000, "EventSource to stop");
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(statuses, [200, 401]);
      // Both ends carry the code: the stream at expiry, and the reconnect refused with 401.
      assert.equal((await expiredCloses()) - closedBefore, 2);
      await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "the stream to be released");
    } finally {
      source.close();
    }
  });

  test("new token resumes from the last event id", async () => {
    const token = await signToken(HMAC_SECRET, { expiresIn: 2, claims: { channels: ["renew"] } });
    const first = recordedSource(`${node.http}/sse?channel=renew&token=${token}`);
    const publishOne = async (n: number) => assert.equal((await publishWithKey(node.http, API_KEY, "renew", { n })).status, 200);
    try {
      await waitUntil(() => first.statuses.length === 1, 10_000, "the stream to open");
      await new Promise((resolve) => setTimeout(resolve, 100));
      await publishOne(1);
      await waitUntil(() => first.received.length === 1, 10_000, "the first event");
      await waitUntil(() => first.closes.length === 1, 10_000, "the close event");
      // What a page does on `close`: stop this source, get a new token, resume from the last id.
      first.source.close();
      await publishOne(2);
      await publishOne(3);
      const renewed = await signToken(HMAC_SECRET, { expiresIn: 600, claims: { channels: ["renew"] } });
      const lastId = first.received[0]!.id;
      const second = recordedSource(`${node.http}/sse?channel=renew&token=${renewed}&lastEventId=${lastId}`);
      try {
        await waitUntil(() => second.received.length === 2, 10_000, "the missed events");
        assert.deepEqual(second.received.map((event) => event.offset), [2, 3]);
        assert.deepEqual(first.statuses, [200]);
      } finally {
        second.source.close();
      }
    } finally {
      first.source.close();
    }
  });
});

describe("sse failures on the node's side", () => {
  test("unreachable key set gets 200, retry and an end", async () => {
    // Nothing listens on the port, so every key set fetch fails.
    const node = await startHerald({
      sse: { retryMs: 100 },
      auth: { jwksUrl: `http://127.0.0.1:${await freePort()}/jwks.json`, jwksTimeoutMs: 1_000 },
    });
    try {
      const token = await signToken(await makeKeyPair("ES256"), { kid: "k1" });
      const stream = await openSse(`${node.http}/sse?channel=keys&token=${token}`);
      await stream.ended;
      assert.equal(stream.status, 200);
      assert.equal(stream.headers["content-type"], "text/event-stream");
      assert.match(stream.recorder.text, /^: token_keys_unavailable\n/);
      assert.equal(stream.recorder.retries.length, 1);
      assert.equal(stream.recorder.events.length, 0);
      await waitUntil(() => node.server.limiter.count(ADDRESS) === 0, 5_000, "the request to be released");
    } finally {
      await node.close();
    }
  });
});
