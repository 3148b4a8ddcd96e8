import type { IncomingMessage } from "node:http";
import { validateChannel } from "../channel.js";
import type { Config } from "../config.js";
import { protocolError } from "../errors.js";
import { tokenFromRequest } from "../auth/request-token.js";

/** A validated `GET /poll` request. */
export interface PollRequest {
  /** Distinct channel names, in request order. */
  readonly channels: string[];
  /** The cursor as sent; undefined starts every channel at its current top. */
  readonly cursor: string | undefined;
  /** How long to hold the request when no event follows the cursor, in ms. */
  readonly holdMs: number;
  readonly token: string | undefined;
}

/**
 * Reads and validates the query of a poll: repeatable `channel`, optional
 * `cursor`, optional `timeout` (ms, capped at poll.holdMs) and the token
 * from `Authorization: Bearer` or the `token` parameter.
 */
export function parsePollRequest(req: IncomingMessage, url: URL, config: Config): PollRequest {
  const names = url.searchParams.getAll("channel");
  if (names.length === 0) {
    throw protocolError("missing_channel", "Name at least one channel: /poll?channel=news.");
  }
  const channels = [...new Set(names)];
  const maxChannels = config.limits.maxChannelsPerConnection;
  if (channels.length > maxChannels) {
    throw protocolError("too_many_channels", `A poll may name at most ${maxChannels} channels; got ${channels.length}.`);
  }
  for (const channel of channels) {
    validateChannel(channel);
  }

  return {
    channels,
    cursor: url.searchParams.get("cursor") ?? undefined,
    holdMs: parseTimeout(url.searchParams.get("timeout"), config.poll.holdMs),
    token: readToken(req, url),
  };
}

function parseTimeout(text: string | null, maxMs: number): number {
  if (text === null) {
    return maxMs;
  }
  if (!/^\d{1,9}$/.test(text)) {
    throw protocolError("bad_request", `The timeout query parameter must be a whole number of ms; got ${JSON.stringify(text.slice(0, 32))}.`);
  }
  return Math.min(Number(text), maxMs);
}

/** Returns the Bearer token of the Authorization header, else the `token` query parameter. */
function readToken(req: IncomingMessage, url: URL): string | undefined {
  return tokenFromRequest(req, url);
}
