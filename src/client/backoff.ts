/**
 * Returns the delay before reconnect attempt `attempt` (0 for the first):
 * a uniform random value between `minDelayMs` and an exponential cap of
 * `minDelayMs * 2^(attempt + 1)`, never above `maxDelayMs`. Spreading
 * each delay over its whole range ("full jitter") keeps the clients of a
 * restarted node from all coming back in the same moment.
 */
export function backoffDelay(attempt: number, minDelayMs: number, maxDelayMs: number, random: () => number = Math.random): number {
  const ceiling = Math.max(minDelayMs, Math.min(maxDelayMs, minDelayMs * 2 ** (attempt + 1)));
  const floor = Math.min(minDelayMs, ceiling);
  return Math.round(floor + random() * (ceiling - floor));
}
