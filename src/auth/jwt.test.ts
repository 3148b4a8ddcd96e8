import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../config.js";
import { createAuthenticator, JwtAuthenticator } from "./jwt.js";

function authSettings(auth: Record<string, unknown>) {
  return loadConfig({ env: {}, overrides: { auth } }).auth;
}

function publicPem(type: "rsa" | "ec", options: object): string {
  const { publicKey } = generateKeyPairSync(type as "rsa", options as never);
  return publicKey.export({ type: "spki", format: "pem" }).toString();
}

test("authenticator chosen from settings", () => {
  assert.equal(createAuthenticator(authSettings({})).enabled, false);
  assert.equal(createAuthenticator(authSettings({ hmacSecret: "x".repeat(32) })).enabled, true);
  assert.ok(createAuthenticator(authSettings({ jwksUrl: "https://keys.example/jwks.json" })) instanceof JwtAuthenticator);
});

test("unusable keys stop start-up", () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["short secret", { hmacSecret: "too-short" }],
    ["missing file", { publicKeys: ["/nonexistent/key.pem"] }],
    ["not a key", { publicKeys: ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"] }],
    ["small rsa key", { publicKeys: [publicPem("rsa", { modulusLength: 1024 })] }],
    ["p-384 key", { publicKeys: [publicPem("ec", { namedCurve: "secp384r1" })] }],
    ["jwks not a url", { jwksUrl: "keys.example/jwks.json" }],
    ["jwks file url", { jwksUrl: "file:///etc/jwks.json" }],
  ];
  for (const [name, auth] of cases) {
    assert.throws(() => new JwtAuthenticator(authSettings(auth)), ConfigError, name);
  }
});

test("usable keys are accepted", () => {
  const settings = authSettings({
    publicKeys: [publicPem("rsa", { modulusLength: 2048 }), publicPem("ec", { namedCurve: "prime256v1" })],
  });
  assert.equal(new JwtAuthenticator(settings).enabled, true);
});
