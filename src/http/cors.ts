import type { IncomingMessage, ServerResponse } from "node:http";
import type { Config } from "../config.js";
import { protocolError } from "../errors.js";

/** Request headers a cross-origin page may send to Herald's HTTP endpoints. */
const ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, Idempotency-Key, Cache-Control";

/**
 * Checks whether a request's `Origin` may use the node. Allowed are requests
 * without an Origin (clients other than browsers, and same-origin GETs),
 * an Origin listed in `allowed` (or any, with `*`), and a same-origin page,
 * whose Origin names the host in the request's Host header. Everything
 * else, the opaque origin `null` included, is a foreign page.
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) {
    return true;
  }
  return originListed(origin, allowed) || sameOrigin(origin.toLowerCase(), req.headers.host);
}

/** Returns whether `allowed` lists the origin or is `*`. */
function originListed(origin: string, allowed: readonly string[]): boolean {
  const normalized = origin.toLowerCase();
  return allowed.some((entry) => entry === "*" || entry.toLowerCase().replace(/\/+$/, "") === normalized);
}

/**
 * Rejects browser requests that a web page may have sent, for endpoints
 * that trust loopback clients without a key. Every browser on the host is
 * a loopback client, so only origins listed in `allowed` may use them.
 * The page's own host does not count: with DNS rebinding, a foreign page
 * can name any host.
 */
export function rejectCrossSite(req: IncomingMessage, allowed: readonly string[]): void {
  const reason = crossSiteReason(req, allowed);
  if (reason !== undefined) {
    throw protocolError("origin_forbidden", reason);
  }
}

/** Says why a request may come from a web page that is not allowed to act as a backend, or undefined when it may not. */
export function crossSiteReason(req: IncomingMessage, allowed: readonly string[]): string | undefined {
  const origin = req.headers.origin;
  if (origin !== undefined && !originListed(origin, allowed)) {
    return `Origin ${JSON.stringify(origin.slice(0, 100))} is not in cors.allowedOrigins, and no API key is configured; list the origin or configure an API key.`;
  }
  if (req.headers["sec-fetch-site"] === "cross-site") {
    return "A cross-site browser request may not use the API while no API key is configured.";
  }
  return undefined;
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || origin === "null") {
    return false;
  }
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Applies the CORS policy of `cors.allowedOrigins` to a request for an
 * HTTP endpoint. A request from a foreign Origin gets `origin_forbidden`
 * (thrown), so a page on another site can neither read the response nor
 * cause a publish. For an allowed Origin the response carries the CORS
 * headers, and a preflight (OPTIONS) gets its 204 response here. Returns
 * true when the caller has nothing left to do.
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, config: Config, methods: readonly string[]): boolean {
  const origin = req.headers.origin;
  const preflight = req.method === "OPTIONS";
  const anyOrigin = config.cors.allowedOrigins.includes("*");
  if (origin !== undefined && !anyOrigin) {
    // The response, a 403 included, depends on the Origin, so caches must key it on Origin.
    res.setHeader("Vary", "Origin");
  }
  if (!originAllowed(req, config.cors.allowedOrigins)) {
    throw protocolError("origin_forbidden", `Origin ${JSON.stringify(origin?.slice(0, 100))} is not in cors.allowedOrigins.`);
  }
  const allowOrigin = anyOrigin ? "*" : origin;
  if (allowOrigin !== undefined) {
    res.setHeader("Access-Control-Allow-Origin", allowOrigin);
    // Clients back off by Retry-After on 429 and 503, so pages must be able to read it.
    res.setHeader("Access-Control-Expose-Headers", "Retry-After");
  }
  if (!preflight) {
    return false;
  }
  res.writeHead(204, {
    Allow: [...methods, "OPTIONS"].join(", "),
    "Access-Control-Allow-Methods": [...methods, "OPTIONS"].join(", "),
    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
    "Access-Control-Max-Age": String(config.cors.maxAgeSeconds),
    "Content-Length": "0",
  });
  res.end();
  return true;
}
