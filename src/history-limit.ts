import { protocolError } from "./errors.js";

/** Maximum number of events one history request returns, on every API. */
export const MAX_HISTORY_LIMIT = 10_000;

/**
 * Returns the number of events a history request reads: `requested`, or
 * when it is undefined the namespace's history size, capped at
 * MAX_HISTORY_LIMIT. A requested limit over the maximum is an error
 * (`code`), not silently lowered, so a client never mistakes a cut list
 * for the whole history.
 */
export function historyLimit(requested: number | undefined, historySize: number, code: "bad_request" | "invalid_command"): number {
  if (requested === undefined) {
    return Math.min(historySize, MAX_HISTORY_LIMIT);
  }
  if (requested > MAX_HISTORY_LIMIT) {
    throw protocolError(code, `The history limit must be at most ${MAX_HISTORY_LIMIT}; got ${requested}.`);
  }
  return requested;
}
