import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const EPOCH_LENGTH = 6;

/**
 * Random bytes, drawn in blocks. The Redis broker passes a fresh epoch
 * with every publish (used only when the channel has none), and one call
 * into the random generator per publish took about a tenth of a node's
 * busy time under a publish load.
 */
const pool = Buffer.alloc(EPOCH_LENGTH * 256);
let used = pool.length;

/**
 * Returns a new epoch: 6 random base-36 characters (about 31 bits), short
 * enough to keep cursors compact. Two histories of one channel get the
 * same epoch with a chance of about 1 in 2 billion.
 */
export function newEpoch(): string {
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let epoch = "";
  for (let i = used; i < used + EPOCH_LENGTH; i++) {
    epoch += ALPHABET[pool[i]! % 36];
  }
  used += EPOCH_LENGTH;
  return epoch;
}
