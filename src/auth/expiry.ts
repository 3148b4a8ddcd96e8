import type { Identity } from "./identity.js";

/** setTimeout fires at once for delays over 2^31 - 1 ms, so longer waits are split. */
const MAX_TIMER_DELAY_MS = 2_147_483_647;

/**
 * Calls `onExpired` once when the identity's token expires, and returns a
 * function that cancels the watch. It costs one unref'd timer per
 * connection, and none for identities without an expiry.
 */
export function watchExpiry(identity: Identity, onExpired: () => void): () => void {
  const expiresAt = identity.expiresAt;
  if (expiresAt === undefined) {
    return () => undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    const remaining = expiresAt - Date.now();
    if (remaining <= 0) {
      timer = undefined;
      onExpired();
      return;
    }
    timer = setTimeout(check, Math.min(remaining, MAX_TIMER_DELAY_MS));
    timer.unref();
  };
  check();
  return () => clearTimeout(timer);
}
