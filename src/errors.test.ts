import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { ERRORS, HeraldError, protocolError, toHeraldError, type ErrorCode } from "./errors.js";

const PROTOCOL_DOC = new URL("../docs/protocol.md", import.meta.url);

/** Rows of the error code table in docs/protocol.md, by code. */
function documentedErrors(): Map<string, { status: number; close: number | undefined; meaning: string }> {
  const text = readFileSync(PROTOCOL_DOC, "utf8");
  const section = text.slice(text.indexOf("## Error codes"));
  const rows = new Map<string, { status: number; close: number | undefined; meaning: string }>();
  for (const line of section.split("\n")) {
    const match = /^\| `([a-z_]+)` \| (\d{3}) \| (\d{4}|-) \| (.+) \|$/.exec(line);
    if (match) {
      rows.set(match[1]!, {
        status: Number(match[2]),
        close: match[3] === "-" ? undefined : Number(match[3]),
        meaning: match[4]!,
      });
    }
  }
  return rows;
}

describe("errors", () => {
  test("every code is documented with its status and close code", () => {
    const documented = documentedErrors();
    for (const [code, spec] of Object.entries(ERRORS)) {
      const row = documented.get(code);
      assert.ok(row, `${code} is missing from the error table in docs/protocol.md`);
      assert.equal(row.status, spec.status, `HTTP status of ${code}`);
      assert.equal(row.close, "close" in spec ? spec.close : undefined, `close code of ${code}`);
      assert.ok(row.meaning.length > 10, `meaning of ${code}`);
    }
  });

  test("documentation lists no unknown code", () => {
    for (const code of documentedErrors().keys()) {
      assert.ok(code in ERRORS, `docs/protocol.md lists ${code}, which src/errors.ts does not define`);
    }
  });

  test("every close code is documented", () => {
    const text = readFileSync(PROTOCOL_DOC, "utf8");
    const closeTable = text.slice(text.indexOf("### Close codes"), text.indexOf("## HTTP API"));
    for (const [code, spec] of Object.entries(ERRORS)) {
      if ("close" in spec) {
        assert.match(closeTable, new RegExp(`^\\| ${spec.close} \\|`, "m"), `close code ${spec.close} of ${code}`);
      }
    }
  });

  test("protocolError carries the registry's status and close code", () => {
    const error = protocolError("message_too_big");
    assert.ok(error instanceof HeraldError);
    assert.equal(error.status, 413);
    assert.equal(error.close, 1009);
    assert.equal(error.message, ERRORS.message_too_big.message);
    assert.deepEqual(error.toJSON(), { code: "message_too_big", message: ERRORS.message_too_big.message });
    assert.equal(protocolError("bad_request", "custom").message, "custom");
  });

  test("toHeraldError hides unknown errors behind internal", () => {
    const cause = new Error("secret detail");
    const error = toHeraldError(cause);
    assert.equal(error.code, "internal" satisfies ErrorCode);
    assert.equal(error.status, 500);
    assert.equal(error.message.includes("secret"), false);
    assert.equal(error.cause, cause);
    const known = protocolError("not_found");
    assert.equal(toHeraldError(known), known);
  });
});
