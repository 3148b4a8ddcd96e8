import { decodeCursor } from "../cursor.js";
import type { StreamPosition } from "./position.js";
import { HeraldClientError, type HttpTarget, type PublishResult } from "./types.js";

/** Close codes that stand for HTTP failures, so every transport reports closes alike. */
const CLOSE_FOR_STATUS: Record<number, number> = { 401: 4001, 403: 4003, 429: 4029, 503: 1013 };

/** Maps an HTTP status to the close code the client acts on. */
export function closeCodeForStatus(status: number): number {
  return CLOSE_FOR_STATUS[status] ?? (status >= 500 ? 1011 : 1008);
}

/** Maps an error code to the close code it would end a WebSocket with. */
export function closeCodeForError(code: string): number {
  if (code === "unauthorized" || code.startsWith("token_")) {
    return 4001;
  }
  return code === "forbidden" ? 4003 : 1008;
}

/** Sends a request and parses its JSON body; throws HeraldClientError for an error status. */
export async function requestJson(host: HttpTarget, path: string, init: RequestInit = {}): Promise<{ body: any; response: Response }> {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string> | undefined) };
  if (host.token !== undefined) {
    headers.Authorization = `Bearer ${host.token}`;
  }
  const response = await host.fetch(host.url + path, { ...init, headers });
  let body: any;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const code = typeof body?.error?.code === "string" ? body.error.code : "http_error";
    const message = typeof body?.error?.message === "string" ? body.error.message : `HTTP ${response.status}`;
    throw new HeraldClientError(code, message, response.status);
  }
  return { body, response };
}

/** Builds `/poll` or `/sse` query text: one `channel` per channel, then the extra parameters. */
export function channelQuery(channels: readonly string[], extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const channel of channels) {
    params.append("channel", channel);
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value !== undefined) {
      params.set(name, value);
    }
  }
  return params.toString();
}

/**
 * Returns the current top of each channel, from a poll that does not wait
 * (`timeout=0`). SSE and long-polling need a position for every channel to
 * build one cursor, and a newly subscribed channel starts from its top.
 */
export async function fetchPositions(host: HttpTarget, channels: readonly string[], signal?: AbortSignal): Promise<Map<string, StreamPosition>> {
  const init: RequestInit = signal === undefined ? {} : { signal };
  const { body } = await requestJson(host, `/poll?${channelQuery(channels, { timeout: "0" })}`, init);
  return decodeCursor(String(body.cursor), channels);
}

/** Publishes through `POST /api/publish`, with the client's token when it has one. */
export async function publishOverHttp(host: HttpTarget, channel: string, data: unknown): Promise<PublishResult> {
  const { body } = await requestJson(host, "/api/publish", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ channel, data }),
  });
  return { channel: body.channel, epoch: body.epoch, offset: body.offset };
}

/** Turns a thrown value into a HeraldClientError. */
export function toClientError(error: unknown, fallbackCode = "network_error"): HeraldClientError {
  if (error instanceof HeraldClientError) {
    return error;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof Error && typeof code === "string") {
    return new HeraldClientError(code, error.message);
  }
  return new HeraldClientError(fallbackCode, error instanceof Error ? error.message : String(error));
}
