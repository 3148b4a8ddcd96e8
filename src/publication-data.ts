import { protocolError } from "./errors.js";

/** Deepest nesting of arrays and objects accepted in publication data. */
export const MAX_DATA_DEPTH = 100;

/**
 * Encodes a publication's `data` as JSON text. JSON.parse reads any depth,
 * but JSON.stringify recurses and overflows the stack on data nested some
 * thousands of levels deep, so the depth is checked first, without
 * recursion, and deeper data gets `invalid_command`.
 */
export function encodePublicationData(value: unknown): string {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (typeof current !== "object" || current === null) {
      continue;
    }
    if (depth >= MAX_DATA_DEPTH) {
      throw protocolError("invalid_command", `The data is nested deeper than ${MAX_DATA_DEPTH} levels.`);
    }
    for (const inner of Object.values(current)) {
      stack.push({ value: inner, depth: depth + 1 });
    }
  }
  return JSON.stringify(value);
}
