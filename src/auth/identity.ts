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
  /** Token expiry in ms since the Unix epoch; undefined when it never expires. */
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

/** Matches a channel against a name or a pattern where `*` stands for any characters. */
export function matchesChannel(patterns: readonly string[], channel: string): boolean {
  for (const pattern of patterns) {
    if (pattern === channel || pattern === "*") {
      return true;
    }
    if (pattern.includes("*")) {
      const parts = pattern.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"));
      if (new RegExp(`^${parts.join(".*")}$`).test(channel)) {
        return true;
      }
    }
  }
  return false;
}

/** Throws `forbidden` unless the identity may subscribe to the channel. */
export function checkSubscribe(identity: Identity, namespace: Namespace, channel: string): void {
  if (matchesChannel(identity.subscribe, channel)) {
    return;
  }
  if (namespace.anonymousSubscribe) {
    return;
  }
  if (identity.anonymous) {
    throw protocolError("unauthorized", `Channel ${channel} needs a token to subscribe.`);
  }
  throw protocolError("forbidden", `The token does not allow subscribing to ${channel}.`);
}

/** Throws unless a client (not the publish API) may publish on the channel. */
export function checkPublish(identity: Identity, namespace: Namespace, channel: string): void {
  if (matchesChannel(identity.publish, channel)) {
    return;
  }
  if (!namespace.clientPublish) {
    throw protocolError("publish_forbidden", `Clients may not publish on ${channel}; publish through the API.`);
  }
  if (!namespace.anonymousSubscribe && identity.anonymous) {
    throw protocolError("unauthorized", `Channel ${channel} needs a token to publish.`);
  }
}
