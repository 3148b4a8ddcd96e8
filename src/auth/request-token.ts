import type { IncomingMessage } from "node:http";
import { protocolError } from "../errors.js";
import type { Authenticator, Identity } from "./identity.js";
import { bearerCredential } from "./secrets.js";

/**
 * Reads a bearer token from an HTTP request: the `Authorization: Bearer`
 * header, else the `token` query parameter (for EventSource and WebSocket
 * in browsers, which cannot set headers). Returns undefined when neither
 * is present; throws `token_malformed` for a header of another scheme and
 * `bad_request` for a repeated parameter.
 */
export function tokenFromRequest(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined && header !== "") {
    const token = bearerCredential(header);
    if (token === undefined) {
      throw protocolError("token_malformed", "Send the token as Authorization: Bearer <token>.");
    }
    return token;
  }
  const values = url.searchParams.getAll("token");
  if (values.length > 1) {
    throw protocolError("bad_request", "Give the token query parameter once.");
  }
  const value = values[0];
  return value === undefined || value === "" ? undefined : value;
}

/** Authenticates an HTTP request by the token it carries; anonymous without one. */
export function authenticateRequest(auth: Authenticator, req: IncomingMessage, url: URL): Promise<Identity> {
  return auth.authenticate(tokenFromRequest(req, url));
}
