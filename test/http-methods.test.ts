import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startHerald } from "./support/herald.js";

describe("http methods", () => {
  let node: Awaited<ReturnType<typeof startHerald>>;

  before(async () => {
    node = await startHerald({ adminToken: "admin-token-for-method-tests" });
  });

  after(async () => {
    await node.close();
  });

  test("wrong method gets 405", async () => {
    const cases: Array<[string, string]> = [
      ["POST", "/healthz"],
      ["DELETE", "/healthz"],
      ["POST", "/readyz"],
      ["PUT", "/readyz"],
      ["POST", "/ws"],
      ["DELETE", "/ws"],
      ["POST", "/api/info"],
      ["POST", "/api/history?channel=x"],
      ["GET", "/api/publish"],
      ["GET", "/api/publish_batch"],
      ["POST", "/metrics"],
      ["POST", "/sse?channel=x"],
    ];
    for (const [method, path] of cases) {
      const response = await fetch(node.http + path, { method });
      assert.equal(response.status, 405, `${method} ${path}`);
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, "method_not_allowed", `${method} ${path}`);
    }
  });

  test("probes answer GET and HEAD", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      for (const method of ["GET", "HEAD"]) {
        const response = await fetch(node.http + path, { method });
        assert.equal(response.status, 200, `${method} ${path}`);
      }
    }
  });

  test("plain GET on /ws is a bad request", async () => {
    const response = await fetch(`${node.http}/ws`);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: string } };
    assert.equal(body.error.code, "bad_request");
  });
});
