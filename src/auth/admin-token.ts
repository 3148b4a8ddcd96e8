import { matchesSecret } from "./secrets.js";

/**
 * The node's admin token, checked in constant time by the same comparison
 * as API keys. An empty configured token turns the check off: nothing
 * matches it.
 */
export class AdminToken {
  constructor(private readonly token: string) {}

  /** Whether an admin token is configured. */
  get enabled(): boolean {
    return this.token !== "";
  }

  /** Returns whether `given` is the admin token, and false for a missing or empty one. */
  matches(given: string | undefined): boolean {
    if (!this.enabled || given === undefined || given === "") {
      return false;
    }
    return matchesSecret(given, [this.token]);
  }
}
