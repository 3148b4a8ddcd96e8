import type { IncomingMessage } from "node:http";
import type { AdminToken } from "../auth/admin-token.js";
import { tokenFromRequest } from "../auth/request-token.js";
import type { StreamPosition } from "../broker/broker.js";
import { validateChannel } from "../channel.js";
import { decodeCursor } from "../cursor.js";
import { protocolError } from "../errors.js";
import { isInternalChannel } from "../events.js";

/** The channels, resume cursor and token of an SSE request, checked and decoded. */
export interface SseRequest {
  /** Channels in the order the query names them. */
  readonly channels: string[];
  /** Resume position of each channel; undefined for a new stream that starts at the newest event. */
  readonly since: Map<string, StreamPosition> | undefined;
  /** Token from `Authorization: Bearer` or the `token` query parameter (tokenFromRequest). */
  readonly token: string | undefined;
  /** Whether the token is the admin token, which may follow internal `$` channels. */
  readonly admin: boolean;
}

/**
 * Reads `channel` (repeatable), the resume cursor and the token. Throws
 * `missing_channel`, `too_many_channels`, `invalid_channel` or
 * `invalid_cursor` naming what is wrong, and the errors of
 * tokenFromRequest for a header of another scheme or a repeated token.
 *
 * An internal channel (`$admin:stats`) passes only with a token, and the
 * caller must still reject it unless `admin` is set. Without a token it is
 * an invalid name, as on every other transport.
 */
export function parseSseRequest(req: IncomingMessage, url: URL, maxChannels: number, adminToken: AdminToken): SseRequest {
  const token = tokenFromRequest(req, url);
  const channels = url.searchParams.getAll("channel");
  if (channels.length === 0) {
    throw protocolError("missing_channel", "Name at least one channel, for example /sse?channel=news.");
  }
  if (channels.length > maxChannels) {
    throw protocolError(
      "too_many_channels",
      `The request names ${channels.length} channels; one stream may carry at most ${maxChannels}.`,
    );
  }
  const seen = new Set<string>();
  for (const channel of channels) {
    if (isInternalChannel(channel) && token !== undefined) {
      validateChannel(channel.slice(1));
    } else {
      validateChannel(channel);
    }
    if (seen.has(channel)) {
      throw protocolError("invalid_channel", `Channel ${channel} is named more than once.`);
    }
    seen.add(channel);
  }

  // A reconnecting EventSource sends the header and keeps the URL it was
  // created with, so the header is the newer position and wins.
  const header = req.headers["last-event-id"];
  const lastEventIds = url.searchParams.getAll("lastEventId");
  if (lastEventIds.length > 1) {
    throw protocolError("bad_request", "Give the lastEventId query parameter once.");
  }
  const cursor = (typeof header === "string" && header !== "" ? header : undefined) ?? nonEmpty(lastEventIds[0] ?? null);
  const since = cursor === undefined ? undefined : decodeCursor(cursor, channels);

  return { channels, since, token, admin: adminToken.matches(token) };
}

function nonEmpty(value: string | null): string | undefined {
  return value === null || value === "" ? undefined : value;
}
