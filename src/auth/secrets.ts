import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks whether `candidate` equals one of the secrets, in time that
 * depends on neither the contents nor the length of either, because both
 * sides are hashed to the same size before the constant-time comparison.
 */
export function matchesSecret(candidate: string, secrets: readonly string[]): boolean {
  const digest = sha256(candidate);
  let found = false;
  for (const secret of secrets) {
    // No early exit, so the time does not reveal which secret matched.
    found = timingSafeEqual(digest, sha256(secret)) || found;
  }
  return found;
}

/** Extracts the credential from `Authorization: Bearer <credential>`, or undefined. */
export function bearerCredential(header: string | undefined): string | undefined {
  const match = /^Bearer +([^\s]+) *$/i.exec(header ?? "");
  return match?.[1];
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
