import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { publishWithKey, upgradeStatus } from "./support/auth-probes.js";
import { startHerald, TestClient } from "./support/herald.js";
import { within } from "./support/timeout.js";
import { HMAC_SECRET, signToken } from "./support/tokens.js";

const API_KEY = "api-key-for-expiry-tests";

describe("auth expiry", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ apiKeys: [API_KEY], auth: { hmacSecret: HMAC_SECRET, clockSkewMs: 0 } });
  });

  after(async () => {
    await node.close();
  });

  test("expired token closes with 4001", async () => {
    const client = await TestClient.open(node.ws);
    const token = await signToken(HMAC_SECRET, { expiresIn: 1, claims: { channels: ["feed"] } });
    const connected = await client.request({ type: "connect", token });
    assert.equal(connected.type, "reply");
    const closed = await within(client.closed, 10_000, "the close");
    assert.equal(closed.code, 4001);
    const notice = client.messages.find((message) => message.type === "error" && message.id === undefined);
    assert.equal(notice?.error.code, "token_expired");
  });

  test("refresh keeps the connection open", async () => {
    const client = await TestClient.open(node.ws);
    const short = await signToken(HMAC_SECRET, { sub: "carol", expiresIn: 1, claims: { channels: ["feed"] } });
    await client.request({ type: "connect", token: short });
    await client.request({ type: "subscribe", channel: "feed" });

    const long = await signToken(HMAC_SECRET, { sub: "carol", expiresIn: 600, claims: { channels: ["feed"] } });
    const refreshed = await client.request({ type: "refresh", token: long });
    assert.equal(refreshed.type, "reply");
    assert.ok(refreshed.result.expiresAt > Date.now() + 500_000);

    await new Promise((resolve) => setTimeout(resolve, 2_200));
    const { status } = await publishWithKey(node.http, API_KEY, "feed", "still here");
    assert.equal(status, 200);
    const [event] = await client.waitForPubs("feed", 1);
    assert.equal(event.data, "still here");
    assert.equal(client.socket.readyState, client.socket.OPEN);
    client.close();
  });

  test("refresh for another user is rejected", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "connect", token: await signToken(HMAC_SECRET, { sub: "carol" }) });
    const other = await client.request({ type: "refresh", token: await signToken(HMAC_SECRET, { sub: "dave" }) });
    assert.equal(other.error.code, "token_user_mismatch");
    const expired = await client.request({ type: "refresh", token: await signToken(HMAC_SECRET, { sub: "carol", expiresIn: -60 }) });
    assert.equal(expired.error.code, "token_expired");
    assert.equal((await client.request({ type: "ping" })).type, "reply");
    client.close();
  });

  test("held poll ends at token expiry", async () => {
    const token = await signToken(HMAC_SECRET, { expiresIn: 1, claims: { channels: ["feed"] } });
    // The node holds a poll 25 s by default, so a response within 10 s comes from the expiry.
    const response = await within(fetch(`${node.http}/poll?channel=feed&token=${token}`), 10_000, "the poll response");
    assert.equal(response.status, 401);
    const body = (await response.json()) as { error: { code: string } };
    assert.equal(body.error.code, "token_expired");
  });

  test("expired upgrade token is rejected", async () => {
    const token = await signToken(HMAC_SECRET, { expiresIn: -60 });
    const refused = await upgradeStatus(`${node.ws}?token=${token}`);
    assert.equal(refused.status, 401);
    assert.equal(refused.code, "token_expired");
  });
});
