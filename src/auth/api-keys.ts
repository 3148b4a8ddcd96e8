import { protocolError } from "../errors.js";
import { isLoopback } from "../http/respond.js";
import { bearerCredential, matchesSecret } from "./secrets.js";

/**
 * The API keys that backends present to publish and read history, over
 * HTTP and gRPC alike. With no key configured, only loopback clients are
 * served, so a fresh node is not an open relay.
 */
export class ApiKeys {
  constructor(private readonly keys: readonly string[]) {}

  /** Whether any key is configured. */
  get configured(): boolean {
    return this.keys.length > 0;
  }

  /** Throws `unauthorized` unless `authorization` is `Bearer <a configured key>`. */
  verify(authorization: string | undefined, remoteAddress: string | undefined): void {
    if (this.keys.length === 0) {
      if (!isLoopback(remoteAddress)) {
        throw protocolError("unauthorized", "No API key is configured, so the API only accepts loopback clients.");
      }
      return;
    }
    const given = bearerCredential(authorization);
    if (given === undefined) {
      throw protocolError("unauthorized", "Send the API key as Authorization: Bearer <key>.");
    }
    if (!this.matches(given)) {
      throw protocolError("unauthorized", "The API key is not valid.");
    }
  }

  /** Returns whether the value is one of the configured keys, compared in constant time. */
  matches(value: string): boolean {
    return matchesSecret(value, this.keys);
  }
}
