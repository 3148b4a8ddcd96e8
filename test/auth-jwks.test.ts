import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startHerald, TestClient } from "./support/herald.js";
import { JwksServer, makeKeyPair, signToken, type KeyPair } from "./support/tokens.js";

/** Cache time of the node under test; the default is 10 minutes. */
const CACHE_MS = 1_000;
const COOLDOWN_MS = 100;

describe("auth jwks", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  const jwks = new JwksServer();
  let first: KeyPair;
  let second: KeyPair;

  const connect = async (key: KeyPair, kid: string): Promise<any> => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "connect", token: await signToken(key, { kid, sub: kid }) });
    client.close();
    return reply;
  };

  before(async () => {
    first = await makeKeyPair("RS256");
    second = await makeKeyPair("ES256");
    await jwks.add(first, "k1");
    const url = await jwks.start();
    node = await startHerald({ auth: { jwksUrl: url, jwksCacheMs: CACHE_MS, jwksCooldownMs: COOLDOWN_MS } });
  });

  after(async () => {
    await node.close();
    await jwks.close();
  });

  test("key rotation through the key set", async () => {
    const accepted = await connect(first, "k1");
    assert.equal(accepted.type, "reply", JSON.stringify(accepted));
    assert.equal(jwks.fetches, 1);

    const again = await connect(first, "k1");
    assert.equal(again.type, "reply");
    assert.equal(jwks.fetches, 1, "a known key id is served from the cache");

    // A new key id: the node refetches the set once the cooldown has passed.
    await jwks.add(second, "k2");
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 50));
    const rotated = await connect(second, "k2");
    assert.equal(rotated.type, "reply", JSON.stringify(rotated));
    assert.equal(rotated.result.user, "k2");
    assert.equal(jwks.fetches, 2);

    // The old key leaves the set: its tokens pass until the cache expires, then fail.
    jwks.remove("k1");
    await new Promise((resolve) => setTimeout(resolve, CACHE_MS + 100));
    const removed = await connect(first, "k1");
    assert.equal(removed.type, "error");
    assert.equal(removed.error.code, "token_unknown_key");
    const current = await connect(second, "k2");
    assert.equal(current.type, "reply");
  });

  test("wrong key with a known kid", async () => {
    const impostor = await makeKeyPair("ES256");
    const reply = await connect(impostor, "k2");
    assert.equal(reply.error.code, "token_invalid_signature");
  });

  test("HS256 is not taken from a key set", async () => {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "connect", token: await signToken("0123456789abcdef0123456789abcdef", { kid: "k2" }) });
    assert.equal(reply.error.code, "token_alg_not_allowed");
    client.close();
  });

  test("unreachable key set", async () => {
    await jwks.close();
    await new Promise((resolve) => setTimeout(resolve, CACHE_MS + 100));
    const reply = await connect(second, "k2");
    assert.equal(reply.error.code, "token_keys_unavailable");
  });
});
