import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { ERRORS, type ErrorCode } from "../errors.js";

/**
 * Rejects an HTTP Upgrade request with an error response in the usual
 * `{"error": {"code", "message"}}` shape, then closes the socket. The
 * socket is destroyed once the response is flushed rather than left
 * half-open until the client sends its FIN, so a client that never
 * closes cannot hold the server's close() open.
 */
export function rejectUpgrade(socket: Duplex, code: ErrorCode, headers: Record<string, string> = {}): void {
  const { status, message } = ERRORS[code];
  const body = JSON.stringify({ error: { code, message } });
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.once("finish", () => socket.destroy());
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}
