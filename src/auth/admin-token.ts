import { createHash, timingSafeEqual } from "node:crypto";

/**
 * The node's admin token, checked in constant time. Comparing SHA-256
 * digests keeps the check constant-time whatever the lengths. An empty
 * configured token turns the check off: nothing matches it.
 */
export class AdminToken {
  private readonly digest: Buffer | undefined;

  constructor(token: string) {
    this.digest = token === "" ? undefined : sha256(token);
  }

  /** Whether an admin token is configured. */
  get enabled(): boolean {
    return this.digest !== undefined;
  }

  /** Returns whether `given` is the admin token, and false for a missing or empty one. */
  matches(given: string | undefined): boolean {
    if (this.digest === undefined || given === undefined || given === "") {
      return false;
    }
    return timingSafeEqual(sha256(given), this.digest);
  }
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
