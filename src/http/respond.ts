import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { HeraldError, protocolError, toHeraldError } from "../errors.js";

/** Sends a JSON body with the given status. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** Sends `{"error": {"code", "message"}}` with the error's status. */
export function sendError(res: ServerResponse, error: unknown, headers: Record<string, string> = {}): HeraldError {
  const herald = toHeraldError(error);
  sendJson(res, herald.status, { error: herald.toJSON() }, headers);
  return herald;
}

/**
 * Builds a complete HTTP/1.1 error response with a JSON body, for sockets
 * that have no ServerResponse (rejected upgrades, unparsable requests).
 */
export function rawErrorResponse(error: HeraldError, headers: Record<string, string> = {}): string {
  const body = JSON.stringify({ error: error.toJSON() });
  const lines = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? "Error"}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/**
 * Reads and parses a JSON request body, rejecting bodies over maxBytes as
 * they stream in, so an oversized upload never sits in memory whole.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) {
      req.resume();
      reject(protocolError("payload_too_large", `The request body is ${declared} bytes; the maximum is ${maxBytes}.`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) {
        return;
      }
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        chunks.length = 0;
        reject(protocolError("payload_too_large", `The request body is larger than ${maxBytes} bytes.`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (failed) {
        return;
      }
      // A small body arrives in one chunk, which needs no copy.
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8");
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        // An empty or blank body never parses, so only a failed parse needs the emptiness check.
        const message =
          text.trim() === ""
            ? "The request body is empty; send a JSON object."
            : `The request body is not valid JSON: ${(error as Error).message}`;
        reject(protocolError("invalid_json", message));
      }
    });
    req.on("error", (error) => {
      if (!failed) {
        failed = true;
        reject(protocolError("bad_request", "The request body could not be read.", error));
      }
    });
  });
}

/**
 * Throws `unsupported_media_type` unless the body is declared as JSON. A
 * browser sends application/json across origins only after a CORS
 * preflight, so this also stops forms and text/plain requests of foreign
 * pages.
 */
export function requireJsonContentType(req: IncomingMessage): void {
  const type = req.headers["content-type"];
  if (type === "application/json") {
    return;
  }
  const mediaType = type?.split(";")[0]!.trim().toLowerCase();
  if (mediaType !== "application/json") {
    throw protocolError(
      "unsupported_media_type",
      `Send the body as Content-Type: application/json; got ${type === undefined ? "no Content-Type" : JSON.stringify(type.slice(0, 100))}.`,
    );
  }
}

/** Throws `method_not_allowed` unless the request method is the expected one. */
export function expectMethod(method: string, expected: string): void {
  if (method !== expected) {
    throw protocolError("method_not_allowed", `Use ${expected} on this path, not ${method}.`);
  }
}

/** Whether a remote address is on the loopback interface. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) {
    return false;
  }
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}


export { HeraldError };
