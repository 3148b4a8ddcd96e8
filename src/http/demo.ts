import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { protocolError } from "../errors.js";
import { sendError } from "./respond.js";

/** Files of the demo page by path. Both resolve alike from src/http and dist/http. */
const FILES: Record<string, { url: URL; type: string }> = {
  "/demo": { url: new URL("../../demo/index.html", import.meta.url), type: "text/html; charset=utf-8" },
  "/demo/herald.js": { url: new URL("../../dist/client/herald.min.js", import.meta.url), type: "text/javascript; charset=utf-8" },
};

/** Returns whether a path belongs to the demo page. */
export function isDemoPath(path: string): boolean {
  return path in FILES || path === "/demo/";
}

/**
 * Serves the demo chat page and the browser bundle of the client SDK.
 * The bundle exists after `npm run build` (or `npm run build:client`).
 */
export async function serveDemo(path: string, res: ServerResponse): Promise<void> {
  const file = FILES[path === "/demo/" ? "/demo" : path];
  if (file === undefined) {
    throw protocolError("not_found", `No demo file at ${path}.`);
  }
  let body: Buffer;
  try {
    body = await readFile(file.url);
  } catch {
    sendError(res, protocolError("not_found", `${path} is not built yet; run npm run build:client.`));
    return;
  }
  res.writeHead(200, { "Content-Type": file.type, "Content-Length": body.length, "Cache-Control": "no-cache" });
  res.end(body);
}
