import { protocolError } from "./errors.js";

/** Maximum length of an idempotency key, in characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;

/**
 * Checks a publish's idempotency key, the same way for every API that
 * publishes. Undefined means no key; throws `invalid_command` for an empty
 * or too long one.
 */
export function checkIdempotencyKey(key: string | undefined): string | undefined {
  if (key !== undefined && (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
    throw protocolError("invalid_command", `The idempotency key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters; got ${key.length}.`);
  }
  return key;
}
