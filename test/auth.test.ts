import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ALL_PROBES, publishWithKey, upgradeStatus } from "./support/auth-probes.js";
import { postJson, startHerald, TestClient } from "./support/herald.js";
import { within } from "./support/timeout.js";
import { handmadeToken, HMAC_SECRET, makeKeyPair, signToken, tamper, type KeyPair, type TokenOptions } from "./support/tokens.js";

const API_KEY = "api-key-for-auth-tests";
const AUDIENCE = "herald-test";
const APP_ORIGIN = "https://app.example";

describe("auth", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  let rsa: KeyPair;
  let ec: KeyPair;
  let offset = 0;
  const token = (options: TokenOptions = {}, key: KeyPair | string = HMAC_SECRET) =>
    signToken(key, { audience: AUDIENCE, ...options });
  const publishOne = (channel: string) => async () => {
    const { status } = await publishWithKey(node.http, API_KEY, channel, { n: ++offset });
    assert.equal(status, 200);
  };

  before(async () => {
    rsa = await makeKeyPair("RS256");
    ec = await makeKeyPair("ES256");
    node = await startHerald({
      apiKeys: [API_KEY],
      auth: { hmacSecret: HMAC_SECRET, publicKeys: [rsa.pem, ec.pem], audience: [AUDIENCE], clockSkewMs: 0 },
      namespaces: { public: { anonymousSubscribe: true }, chat: { clientPublish: true } },
      websocket: { allowedOrigins: [APP_ORIGIN] },
      cors: { allowedOrigins: [APP_ORIGIN] },
    });
  });

  after(async () => {
    await node.close();
  });

  for (const probe of ALL_PROBES) {
    test(`${probe.name}: private channel needs a claim`, async (t) => {
      if (!(await probe.available(node.http))) {
        t.skip(`${probe.name} is not served by this build`);
        return;
      }
      const channel = `private-${probe.name}`;
      const anonymous = await probe.receive(node.http, channel, undefined, publishOne(channel));
      assert.deepEqual(anonymous.served ? "served" : anonymous.code, "forbidden");

      const unlisted = await probe.receive(node.http, channel, await token({ claims: { channels: ["other"] } }), publishOne(channel));
      assert.deepEqual(unlisted.served ? "served" : unlisted.code, "forbidden");

      const listed = await probe.receive(node.http, channel, await token({ claims: { channels: [channel] } }), publishOne(channel));
      assert.equal(listed.served, true);

      const pattern = await probe.receive(node.http, channel, await token({ claims: { channels: ["private-*"] } }), publishOne(channel));
      assert.equal(pattern.served, true);
    });

    test(`${probe.name}: user A never gets user B's channel`, async (t) => {
      if (!(await probe.available(node.http))) {
        t.skip(`${probe.name} is not served by this build`);
        return;
      }
      const alice = await token({ sub: "alice", claims: { channels: ["user:alice", "user:alice:*"] } });
      const own = await probe.receive(node.http, "user:alice", alice, publishOne("user:alice"));
      assert.equal(own.served, true);
      for (const channel of ["user:bob", "user:alicex", "user:bob:alice", "user:ali"]) {
        const outcome = await probe.receive(node.http, channel, alice, publishOne(channel));
        assert.equal(outcome.served ? "served" : outcome.code, "forbidden", channel);
      }
    });

    test(`${probe.name}: bad tokens get their own codes`, async (t) => {
      if (!(await probe.available(node.http))) {
        t.skip(`${probe.name} is not served by this build`);
        return;
      }
      const channel = "public:open";
      const cases = await badTokens(token, rsa);
      for (const [name, bad, code] of cases) {
        const outcome = await probe.receive(node.http, channel, bad, publishOne(channel));
        assert.equal(outcome.served ? "served" : outcome.code, code, name);
      }
    });
  }

  test("every key type is accepted", async () => {
    for (const key of [HMAC_SECRET, rsa, ec]) {
      const client = await TestClient.open(node.ws);
      const reply = await client.request({ type: "connect", token: await token({ sub: "keyed" }, key) });
      assert.equal(reply.type, "reply", JSON.stringify(reply));
      assert.equal(reply.result.user, "keyed");
      client.close();
    }
  });

  test("rejected connect closes with 4001", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "connect", token: await token({ expiresIn: -60 }) });
    assert.equal(reply.error.code, "token_expired");
    const closed = await within(client.closed, 10_000, "the close");
    assert.equal(closed.code, 4001);
  });

  test("token in the upgrade URL", async () => {
    const good = await token({ claims: { channels: ["secret"] } });
    const client = await TestClient.open(`${node.ws}?token=${good}`);
    const reply = await client.request({ type: "subscribe", channel: "secret" });
    assert.equal(reply.type, "reply");
    await publishOne("secret")();
    await client.waitForPubs("secret", 1);
    client.close();

    const refused = await upgradeStatus(`${node.ws}?token=${tamper(good, { sub: "mallory" })}`);
    assert.equal(refused.status, 401);
    assert.equal(refused.code, "token_invalid_signature");
  });

  test("token in the upgrade Authorization header", async () => {
    const good = await token({ claims: { channels: ["header-secret"] } });
    const client = await TestClient.open(node.ws, { headers: { Authorization: `Bearer ${good}` } });
    const reply = await client.request({ type: "subscribe", channel: "header-secret" });
    assert.equal(reply.type, "reply");
    client.close();
  });

  test("publish needs a publish claim", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "connect", token: await token({ claims: { channels: ["news"], publish: ["chat:*"] } }) });
    const denied = await client.request({ type: "publish", channel: "news", data: 1 });
    assert.equal(denied.error.code, "publish_forbidden");
    const allowed = await client.request({ type: "publish", channel: "chat:room", data: 1 });
    assert.equal(allowed.type, "reply");
    assert.equal(allowed.result.offset, 1);
    client.close();
  });

  test("namespace client publish needs subscribe right", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "connect", token: await token({ claims: { channels: ["chat:mine"] } }) });
    const own = await client.request({ type: "publish", channel: "chat:mine", data: 1 });
    assert.equal(own.type, "reply");
    const other = await client.request({ type: "publish", channel: "chat:theirs", data: 1 });
    assert.equal(other.error.code, "publish_forbidden");
    client.close();
  });

  test("history and presence need subscribe right", async () => {
    const client = await TestClient.open(node.ws);
    await client.request({ type: "connect", token: await token({ sub: "alice", claims: { channels: ["user:alice"] } }) });
    const history = await client.request({ type: "history", channel: "user:bob" });
    assert.equal(history.error.code, "forbidden");
    const presence = await client.request({ type: "presence", channel: "user:bob" });
    assert.equal(presence.error.code, "forbidden");
    client.close();
  });

  test("session of user A is not restored for B", async () => {
    const alice = await TestClient.open(node.ws);
    const first = await alice.request({ type: "connect", token: await token({ sub: "alice", claims: { channels: ["user:alice"] } }) });
    await alice.request({ type: "subscribe", channel: "user:alice" });
    alice.close();
    await within(alice.closed, 10_000, "the close");

    const bob = await TestClient.open(node.ws);
    const reply = await bob.request({
      type: "connect",
      token: await token({ sub: "bob", claims: { channels: ["user:*"] } }),
      session: first.result.session,
    });
    assert.equal(reply.type, "reply");
    assert.deepEqual(reply.result.restored, []);
    assert.notEqual(reply.result.session, first.result.session);
    bob.close();
  });

  test("publish API needs its key", async () => {
    const missing = await postJson(node.http, "/api/publish", { channel: "x", data: 1 });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, "unauthorized");
    const wrong = await postJson(node.http, "/api/publish", { channel: "x", data: 1 }, { Authorization: "Bearer wrong" });
    assert.equal(wrong.status, 401);
    // A valid client token is a client, not a backend: it may publish only where its claims or the namespace allow.
    const jwt = await postJson(node.http, "/api/publish", { channel: "x", data: 1 }, { Authorization: `Bearer ${await token()}` });
    assert.equal(jwt.status, 403);
    assert.equal(jwt.body.error.code, "publish_forbidden");
    const good = await publishWithKey(node.http, API_KEY, "x", 1);
    assert.equal(good.status, 200);
  });

  test("websocket Origin allow-list", async () => {
    const foreign = await upgradeStatus(node.ws, { Origin: "https://evil.example" });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.code, "origin_forbidden");

    const nullOrigin = await upgradeStatus(node.ws, { Origin: "null" });
    assert.equal(nullOrigin.status, 403);

    const allowed = await TestClient.open(node.ws, { origin: APP_ORIGIN });
    const reply = await allowed.request({ type: "ping" });
    assert.equal(reply.type, "reply");
    allowed.close();

    const sameOrigin = await TestClient.open(node.ws, { origin: `http://127.0.0.1:${node.port}` });
    assert.equal((await sameOrigin.request({ type: "ping" })).type, "reply");
    sameOrigin.close();

    const noOrigin = await TestClient.open(node.ws);
    assert.equal((await noOrigin.request({ type: "ping" })).type, "reply");
    noOrigin.close();
  });

  test("publish API CORS", async () => {
    const preflight = await fetch(`${node.http}/api/publish`, {
      method: "OPTIONS",
      headers: { Origin: APP_ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /Authorization/);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);

    const foreignPreflight = await fetch(`${node.http}/api/publish`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
    });
    assert.equal(foreignPreflight.status, 403);
    assert.equal(foreignPreflight.headers.get("access-control-allow-origin"), null);

    const allowed = await publishWithKey(node.http, API_KEY, "cors", 1).then(() =>
      postJson(node.http, "/api/publish", { channel: "cors", data: 2 }, { Authorization: `Bearer ${API_KEY}`, Origin: APP_ORIGIN }),
    );
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.equal(allowed.headers.get("access-control-expose-headers"), "Retry-After");

    // A foreign page must not be able to publish, even with a simple (unpreflighted) request.
    const foreign = await postJson(node.http, "/api/publish", '{"channel":"cors","data":3}', {
      "Content-Type": "text/plain",
      Authorization: `Bearer ${API_KEY}`,
      Origin: "https://evil.example",
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error.code, "origin_forbidden");
    const history = await fetch(`${node.http}/api/history?channel=cors`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    const kept = (await history.json()) as { top: number };
    assert.equal(kept.top, 2);

    const historyPreflight = await fetch(`${node.http}/api/history?channel=cors`, {
      method: "OPTIONS",
      headers: { Origin: APP_ORIGIN, "Access-Control-Request-Method": "GET" },
    });
    assert.equal(historyPreflight.status, 204);
  });
});

/** Tokens that must be rejected, each with the code it must get. */
async function badTokens(
  token: (options?: TokenOptions, key?: KeyPair | string) => Promise<string>,
  rsa: KeyPair,
): Promise<Array<[string, string, string]>> {
  const other = await makeKeyPair("RS256");
  const good = await token({ claims: { channels: ["public:open"] } });
  const header = JSON.parse(Buffer.from(good.split(".")[0]!, "base64url").toString()) as object;
  const payload = JSON.parse(Buffer.from(good.split(".")[1]!, "base64url").toString()) as object;
  return [
    ["expired", await token({ expiresIn: -60 }), "token_expired"],
    ["tampered", tamper(good, { sub: "mallory" }), "token_invalid_signature"],
    ["wrong hmac secret", await token({}, "another-secret-0123456789abcdef0123456789"), "token_invalid_signature"],
    ["wrong rsa key", await token({}, other), "token_invalid_signature"],
    ["alg none", handmadeToken({ ...header, alg: "none" }, payload), "token_alg_not_allowed"],
    ["alg None", handmadeToken({ ...header, alg: "None" }, payload), "token_alg_not_allowed"],
    ["alg HS512", handmadeToken({ alg: "HS512" }, payload, HMAC_SECRET), "token_alg_not_allowed"],
    // Algorithm confusion: an HS256 token whose secret is the server's RSA public key.
    ["rsa key as hmac secret", handmadeToken({ alg: "HS256" }, payload, rsa.pem), "token_invalid_signature"],
    ["wrong audience", await token({ audience: "someone-else" }), "token_wrong_audience"],
    ["no audience", await signToken(HMAC_SECRET, {}), "token_wrong_audience"],
    ["not yet valid", await token({ notBefore: 600 }), "token_not_yet_valid"],
    ["no subject", handmadeToken({ alg: "HS256" }, { ...payload, sub: undefined }, HMAC_SECRET), "token_invalid_claims"],
    ["channels not a list", await token({ claims: { channels: "public:open" } }), "token_invalid_claims"],
    ["garbage", "not-a-token", "token_malformed"],
    ["two parts", "eyJhbGciOiJIUzI1NiJ9.e30", "token_malformed"],
    ["bad base64", "@@@.@@@.@@@", "token_malformed"],
  ];
}

describe("cors wildcard", () => {
  test("wildcard origin gets a star", async () => {
    const node = await startHerald({ cors: { allowedOrigins: ["*"] } });
    try {
      const preflight = await fetch(`${node.http}/api/history?channel=x`, { method: "OPTIONS" });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
      const response = await fetch(`${node.http}/api/history?channel=x`, { headers: { Origin: "https://any.example" } });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
    } finally {
      await node.close();
    }
  });
});
