import type { StreamPosition } from "./broker/broker.js";
import { protocolError } from "./errors.js";

/**
 * Cursors name a position in every channel of an SSE stream or long-poll
 * at once, so SSE ids and poll cursors share one format and a client can
 * move between the two without a gap.
 *
 * Layout, all URL-safe ASCII:  1.<entry>.<entry>….<check>
 *   - `1` is the format version.
 *   - one entry per channel, in the channels' sorted order:
 *     `<epoch>-<offset in base 36>`, or `-<offset>` when the epoch equals
 *     the previous entry's, which keeps cursors of one broker short.
 *   - `check` is a base-36 FNV-1a hash of the channel names and entries.
 *     It catches a cursor that was truncated, altered or taken from a
 *     stream of other channels. It is not a signature: a client may only
 *     ever move itself, so there is nothing to protect.
 * Browsers send a CORS preflight for a Last-Event-ID over 128 bytes, which
 * a single-channel cursor (about 16 bytes) stays far below.
 */

const VERSION = "1";
/** Maximum cursor length, in characters. */
export const MAX_CURSOR_LENGTH = 4096;
const EPOCH_PATTERN = /^[0-9a-z]{1,16}$/;
const OFFSET_PATTERN = /^[0-9a-z]{1,11}$/;

/** Encodes positions of `channels` (any order) into a cursor. */
export function encodeCursor(channels: readonly string[], positions: ReadonlyMap<string, StreamPosition>): string {
  const sorted = [...channels].sort();
  const entries: string[] = [];
  let previousEpoch = "";
  for (const channel of sorted) {
    const position = positions.get(channel);
    if (!position) {
      throw new Error(`No position for channel ${channel}`);
    }
    const epochPart = position.epoch === previousEpoch ? "" : position.epoch;
    entries.push(`${epochPart}-${position.offset.toString(36)}`);
    previousEpoch = position.epoch;
  }
  const body = entries.join(".");
  return `${VERSION}.${body}.${checksum(sorted, body)}`;
}

/** Decodes a cursor for `channels`; throws `invalid_cursor` naming the problem. */
export function decodeCursor(cursor: string, channels: readonly string[]): Map<string, StreamPosition> {
  if (cursor.length > MAX_CURSOR_LENGTH) {
    throw protocolError("invalid_cursor", `The cursor is longer than ${MAX_CURSOR_LENGTH} characters.`);
  }
  const parts = cursor.split(".");
  if (parts[0] !== VERSION) {
    throw protocolError("invalid_cursor", `The cursor has unsupported version ${JSON.stringify(parts[0]?.slice(0, 8))}; expected ${VERSION}.`);
  }
  const sorted = [...channels].sort();
  if (parts.length !== sorted.length + 2) {
    throw protocolError(
      "invalid_cursor",
      `The cursor has ${count(Math.max(parts.length - 2, 0), "position")} but the request names ${count(sorted.length, "channel")}.`,
    );
  }
  const entries = parts.slice(1, -1);
  const body = entries.join(".");
  if (parts[parts.length - 1] !== checksum(sorted, body)) {
    throw protocolError("invalid_cursor", "The cursor's check does not match: it was altered, truncated or belongs to other channels.");
  }

  const positions = new Map<string, StreamPosition>();
  let previousEpoch = "";
  for (let i = 0; i < sorted.length; i++) {
    const entry = entries[i]!;
    const dash = entry.lastIndexOf("-");
    const epoch = dash === 0 ? previousEpoch : entry.slice(0, dash);
    const offsetText = entry.slice(dash + 1);
    if (dash < 0 || !EPOCH_PATTERN.test(epoch) || !OFFSET_PATTERN.test(offsetText)) {
      throw protocolError("invalid_cursor", `The cursor's position ${i + 1} is malformed.`);
    }
    const offset = parseInt(offsetText, 36);
    if (!Number.isSafeInteger(offset)) {
      throw protocolError("invalid_cursor", `The cursor's position ${i + 1} has an offset out of range.`);
    }
    positions.set(sorted[i]!, { epoch, offset });
    previousEpoch = epoch;
  }
  return positions;
}

/** 32-bit FNV-1a over the channel names and the entries, in base 36. */
function checksum(sortedChannels: readonly string[], body: string): string {
  let hash = 0x811c9dc5;
  const text = `${sortedChannels.join("\n")}\n${body}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(36);
}

/** Writes a count with its noun, singular for 1 and plural otherwise. */
function count(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : `${noun}s`}`;
}
