import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/**
 * Returns a new epoch: 6 random base-36 characters (about 31 bits), short
 * enough to keep cursors compact. Two histories of one channel get the
 * same epoch with a chance of about 1 in 2 billion.
 */
export function newEpoch(): string {
  const bytes = randomBytes(6);
  let epoch = "";
  for (const byte of bytes) {
    epoch += ALPHABET[byte % 36];
  }
  return epoch;
}
