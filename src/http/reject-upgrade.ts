import type { Duplex } from "node:stream";
import { protocolError, type ErrorCode, type HeraldError } from "../errors.js";
import { rawErrorResponse } from "./respond.js";

/**
 * Rejects an HTTP Upgrade request with an error response in the usual
 * `{"error": {"code", "message"}}` shape, then closes the socket. The
 * socket is destroyed once the response is flushed rather than left
 * half-open until the client sends its FIN, so a client that never
 * closes cannot hold the server's close() open.
 */
export function rejectUpgrade(socket: Duplex, error: HeraldError | ErrorCode, headers: Record<string, string> = {}): void {
  const herald = typeof error === "string" ? protocolError(error) : error;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once("finish", () => socket.destroy());
  socket.end(rawErrorResponse(herald, headers));
}
