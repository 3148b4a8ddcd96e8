import { protocolError } from "./errors.js";

/** Deepest nesting of arrays and objects accepted in publication data. */
export const MAX_DATA_DEPTH = 100;

/**
 * Encodes a publication's `data` as JSON text. JSON.parse reads any depth,
 * but JSON.stringify recurses and overflows the stack on data nested some
 * thousands of levels deep, so the depth is checked first and deeper data
 * gets `invalid_command`.
 */
export function encodePublicationData(value: unknown): string {
  checkDepth(value, 0);
  return JSON.stringify(value);
}

/**
 * Throws unless `value` nests at most MAX_DATA_DEPTH levels below `depth`.
 * The recursion stops at the limit, so it never goes deeper than
 * MAX_DATA_DEPTH frames, and it allocates nothing for arrays.
 */
function checkDepth(value: unknown, depth: number): void {
  if (typeof value !== "object" || value === null) {
    return;
  }
  if (depth >= MAX_DATA_DEPTH) {
    throw protocolError("invalid_command", `The data is nested deeper than ${MAX_DATA_DEPTH} levels.`);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      checkDepth(value[i], depth + 1);
    }
    return;
  }
  for (const inner of Object.values(value)) {
    checkDepth(inner, depth + 1);
  }
}
