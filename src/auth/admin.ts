import type { IncomingMessage } from "node:http";
import type { Config } from "../config.js";
import { protocolError } from "../errors.js";
import { tokenFromRequest } from "./request-token.js";
import { matchesSecret } from "./secrets.js";

/**
 * Throws unless the request carries the admin token, as
 * `Authorization: Bearer <token>` or, for the admin page opened in a
 * browser, a `token` query parameter. With no admin token configured the
 * admin surface is off and every request gets `admin_disabled` (403).
 */
export function checkAdmin(config: Config, req: IncomingMessage, url: URL): void {
  if (config.adminToken === "") {
    throw protocolError("admin_disabled", "The admin API is off; set adminToken (HERALD_ADMIN_TOKEN) to turn it on.");
  }
  let credential: string | undefined;
  try {
    credential = tokenFromRequest(req, url);
  } catch {
    credential = undefined;
  }
  if (credential === undefined) {
    throw protocolError("unauthorized", "Send the admin token as Authorization: Bearer <token>.");
  }
  if (!matchesSecret(credential, [config.adminToken])) {
    throw protocolError("unauthorized", "The admin token is not valid.");
  }
}
