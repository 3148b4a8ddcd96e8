/**
 * Reconnect delays spread around a base value, so that the clients of a
 * node that drains do not all come back in the same second. Used for the
 * SSE `retry:` field and the WebSocket upgrade's `Retry-After` while the
 * node drains.
 */

/** Fraction of the base delay that the result may differ by, either way. */
const SPREAD = 0.5;

/**
 * Returns a whole number of milliseconds drawn uniformly from
 * [baseMs × 0.5, baseMs × 1.5], so the mean stays at baseMs.
 * `random` returns a number in [0, 1), like Math.random.
 */
export function jitteredRetryMs(baseMs: number, random: () => number = Math.random): number {
  if (!Number.isFinite(baseMs) || baseMs < 0) {
    throw new RangeError(`The base delay must be a finite number of ms >= 0; got ${baseMs}.`);
  }
  const low = Math.ceil(baseMs * (1 - SPREAD));
  const high = Math.floor(baseMs * (1 + SPREAD));
  return low + Math.floor(random() * (high - low + 1));
}

/** Returns a jittered delay in whole seconds, at least 1, for an HTTP `Retry-After` header. */
export function jitteredRetryAfterSeconds(baseMs: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(jitteredRetryMs(baseMs, random) / 1000));
}
