import type { Namespace } from "../channel.js";
import { protocolError } from "../errors.js";

/** Who a connection acts as, and what its token allows. */
export interface Identity {
  /** The token's `sub`; empty for anonymous clients. */
  readonly user: string;
  readonly anonymous: boolean;
  /** Channel names or patterns (`*` matches any run of characters) the user may subscribe to. */
  readonly subscribe: readonly string[];
  /** Channel names or patterns the user may publish on. */
  readonly publish: readonly string[];
  /**
   * Time in ms since the Unix epoch after which the node treats the token
   * as expired: its `exp` plus the allowed clock skew. Undefined when the
   * token has no `exp`.
   */
  readonly expiresAt: number | undefined;
}

export const ANONYMOUS: Identity = Object.freeze({
  user: "",
  anonymous: true,
  subscribe: [],
  publish: [],
  expiresAt: undefined,
});

/** Turns a token into an identity; throws an `unauthorized` or `token_*` error. */
export interface Authenticator {
  /** Whether any token key is configured. */
  readonly enabled: boolean;
  authenticate(token: string | undefined): Promise<Identity>;
}

/** Authenticator for a node with no token key: every client is anonymous. */
export class AnonymousAuthenticator implements Authenticator {
  readonly enabled = false;

  async authenticate(token: string | undefined): Promise<Identity> {
    if (token !== undefined && token !== "") {
      throw protocolError("token_invalid", "This node has no token key configured, so it cannot verify tokens.");
    }
    return ANONYMOUS;
  }
}

/** Matches a channel against names or patterns where `*` stands for any run of characters. */
export function matchesChannel(patterns: readonly string[], channel: string): boolean {
  for (const pattern of patterns) {
    if (pattern === channel || pattern === "*") {
      return true;
    }
    if (pattern.includes("*") && globMatches(pattern, channel)) {
      return true;
    }
  }
  return false;
}

/**
 * Glob match with `*` only. It backtracks to the last `*` alone, so it runs
 * in O(pattern × text) time whatever the pattern, unlike a regular
 * expression built from it.
 */
function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (p < pattern.length && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") {
    p++;
  }
  return p === pattern.length;
}

/**
 * Throws `forbidden` unless the identity may subscribe to the channel: its
 * token lists the channel, or the namespace lets anyone subscribe.
 */
export function checkSubscribe(identity: Identity, namespace: Namespace, channel: string): void {
  if (!maySubscribe(identity, namespace, channel)) {
    const reason = identity.anonymous ? "needs a token that lists it" : "is not listed in the token";
    throw protocolError("forbidden", `Channel ${channel} ${reason}.`);
  }
}

function maySubscribe(identity: Identity, namespace: Namespace, channel: string): boolean {
  return namespace.anonymousSubscribe || matchesChannel(identity.subscribe, channel);
}

/**
 * Throws `publish_forbidden` unless a client (not the publish API) may
 * publish on the channel: its token's publish claim lists the channel, or
 * the namespace allows client publishing and the client may subscribe.
 */
export function checkPublish(identity: Identity, namespace: Namespace, channel: string): void {
  if (matchesChannel(identity.publish, channel)) {
    return;
  }
  if (!namespace.clientPublish) {
    throw protocolError("publish_forbidden", `Clients may not publish on ${channel}; publish through the API.`);
  }
  if (!maySubscribe(identity, namespace, channel)) {
    throw protocolError("publish_forbidden", `Channel ${channel} is not listed in the token, so the client may not publish on it.`);
  }
}
