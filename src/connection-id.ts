import { randomUUID } from "node:crypto";

/**
 * Returns a random UUID stored as one flat string. Node 20's randomUUID()
 * builds its result by concatenation, which V8 keeps as a tree of about
 * twenty string nodes (about 0.4 KiB) until something flattens it. A
 * connection keeps its ids for life, so the Latin-1 round trip through a
 * Buffer, which yields a flat 36-character string, saves that per id.
 */
export function connectionId(): string {
  return Buffer.from(randomUUID(), "latin1").toString("latin1");
}
