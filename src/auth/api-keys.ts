import { timingSafeEqual } from "node:crypto";
import { protocolError } from "../errors.js";
import { isLoopback } from "../http/respond.js";

/**
 * The API keys that backends present to publish and read history, over
 * HTTP and gRPC alike. With no key configured, only loopback clients are
 * served, so a fresh node is not an open relay.
 */
export class ApiKeys {
  private readonly keys: Buffer[];

  constructor(keys: readonly string[]) {
    this.keys = keys.map((key) => Buffer.from(key));
  }

  /** Throws `unauthorized` unless `authorization` is `Bearer <a configured key>`. */
  verify(authorization: string | undefined, remoteAddress: string | undefined): void {
    if (this.keys.length === 0) {
      if (!isLoopback(remoteAddress)) {
        throw protocolError("unauthorized", "No API key is configured, so the API only accepts loopback clients.");
      }
      return;
    }
    const match = /^Bearer\s+(.+)$/i.exec(authorization ?? "");
    if (!match) {
      throw protocolError("unauthorized", "Send the API key as Authorization: Bearer <key>.");
    }
    if (!this.matches(match[1]!.trim())) {
      throw protocolError("unauthorized", "The API key is not valid.");
    }
  }

  /** Whether the value is one of the configured keys, compared in constant time. */
  matches(value: string): boolean {
    const given = Buffer.from(value);
    let found = false;
    for (const key of this.keys) {
      if (key.length === given.length && timingSafeEqual(key, given)) {
        found = true;
      }
    }
    return found;
  }
}
