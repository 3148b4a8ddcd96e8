import { protocolError } from "../errors.js";

/** Base for parsing request targets, which are paths with no scheme or host. */
const BASE_URL = "http://herald.invalid";

/**
 * A path that the WHATWG URL parser returns unchanged as the pathname: no
 * query, fragment, percent escape, backslash or dot segment, and no
 * leading `//`, which the parser would read as a host.
 */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9_\-/]*$/;

/**
 * The target of an HTTP request. Most requests, publishes above all, have
 * a plain path, which always parses to itself. Their URL is parsed only
 * when a handler reads it.
 */
export class RequestTarget {
  private parsed: URL | undefined;

  private constructor(
    private readonly raw: string,
    readonly pathname: string,
    parsed: URL | undefined,
  ) {
    this.parsed = parsed;
  }

  /** Reads `req.url`; throws `bad_request` when it is not a valid URL path. */
  static of(raw: string | undefined): RequestTarget {
    const target = raw ?? "/";
    if (PLAIN_PATH.test(target)) {
      return new RequestTarget(target, target, undefined);
    }
    let url: URL;
    try {
      url = parseRequestTarget(target);
    } catch {
      throw protocolError("bad_request", "The request URL is invalid.");
    }
    return new RequestTarget(target, url.pathname, url);
  }

  /** The parsed URL, for handlers that read the query. */
  get url(): URL {
    this.parsed ??= parseRequestTarget(this.raw);
    return this.parsed;
  }
}

/**
 * Parses a request target: a path (`/api/publish?x=1`), or in absolute
 * form a whole URL. A path that starts with `//` is still a path, where
 * parsing against a base URL would read a host out of it. Throws on a
 * target that is not a URL.
 */
export function parseRequestTarget(target: string): URL {
  return target.startsWith("/") ? new URL(`${BASE_URL}${target}`) : new URL(target, BASE_URL);
}
