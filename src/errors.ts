/**
 * The one registry of Herald's error codes. Every error that reaches a client
 * is built from here, so a code always carries the same HTTP status and
 * WebSocket close code, and docs/protocol.md can be checked against it.
 */

export interface ErrorSpec {
  /** HTTP status for the HTTP transports and the API. */
  readonly status: number;
  /** WebSocket close code when the error ends the connection, else undefined. */
  readonly close?: number;
  /** Default message, used when the caller gives none. */
  readonly message: string;
}

export const ERRORS = {
  bad_request: { status: 400, message: "The request is invalid." },
  invalid_json: { status: 400, message: "The body or frame is not valid JSON." },
  invalid_command: { status: 400, message: "The command does not match its schema." },
  unknown_command: { status: 400, message: "The command type is not known." },
  missing_id: { status: 400, message: "The command has no request id." },
  invalid_channel: { status: 400, message: "The channel name is invalid." },
  invalid_cursor: { status: 400, message: "The cursor is invalid." },
  invalid_position: { status: 400, message: "The stream position is invalid." },
  missing_channel: { status: 400, message: "At least one channel is required." },
  too_many_channels: { status: 400, message: "The connection has too many channels." },
  already_subscribed: { status: 400, message: "The connection is already subscribed to this channel." },
  not_subscribed: { status: 400, message: "The connection is not subscribed to this channel." },
  binary_not_supported: { status: 400, close: 1003, message: "Binary frames are not accepted; send JSON text." },
  unauthorized: { status: 401, close: 4001, message: "Credentials are missing or invalid." },
  token_expired: { status: 401, close: 4001, message: "The token has expired." },
  token_invalid: { status: 401, close: 4001, message: "The token is invalid." },
  token_malformed: { status: 401, close: 4001, message: "The token is not a well-formed JWS compact JWT." },
  token_invalid_signature: { status: 401, close: 4001, message: "The token signature does not verify." },
  token_alg_not_allowed: { status: 401, close: 4001, message: "The token's signing algorithm is not allowed." },
  token_unknown_key: { status: 401, close: 4001, message: "No configured key matches the token's key id." },
  token_not_yet_valid: { status: 401, close: 4001, message: "The token is not valid yet (nbf)." },
  token_wrong_audience: { status: 401, close: 4001, message: "The token's audience (aud) is not accepted." },
  token_wrong_issuer: { status: 401, close: 4001, message: "The token's issuer (iss) is not accepted." },
  token_invalid_claims: { status: 401, close: 4001, message: "The token's claims are missing or have the wrong type." },
  token_user_mismatch: { status: 401, close: 4001, message: "The new token is for another user." },
  token_keys_unavailable: { status: 503, close: 1013, message: "The token keys could not be fetched; try again later." },
  forbidden: { status: 403, close: 4003, message: "Access to this resource is forbidden." },
  origin_forbidden: { status: 403, message: "The Origin is not allowed." },
  publish_forbidden: { status: 403, message: "Clients may not publish on this channel." },
  not_found: { status: 404, message: "Not found." },
  method_not_allowed: { status: 405, message: "The method is not allowed on this path." },
  message_too_big: { status: 413, close: 1009, message: "The message is larger than the maximum size." },
  payload_too_large: { status: 413, message: "The request body is larger than the maximum size." },
  rate_limited: { status: 429, close: 4029, message: "Too many requests; slow down." },
  too_many_connections: { status: 429, message: "Too many connections from this address." },
  headers_too_large: { status: 431, message: "The request headers are larger than the maximum size." },
  slow_consumer: { status: 503, close: 4008, message: "The client did not read fast enough." },
  draining: { status: 503, close: 1001, message: "The node is shutting down; reconnect elsewhere." },
  broker_unavailable: { status: 503, close: 1013, message: "The broker is unavailable; try again later." },
  internal: { status: 500, close: 1011, message: "An internal error occurred." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error meant for a client: it carries a stable code from the registry. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly close: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(message ?? spec.message, options);
    this.name = "HeraldError";
    this.code = code;
    this.status = spec.status;
    this.close = spec.close;
  }

  /** The JSON body that HTTP responses and WebSocket replies carry. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Builds a client error; every protocol error goes through here. */
export function protocolError(code: ErrorCode, message?: string, cause?: unknown): HeraldError {
  return new HeraldError(code, message, cause === undefined ? undefined : { cause });
}

/** Maps any thrown value to a client error, hiding internals behind `internal`. */
export function toHeraldError(error: unknown): HeraldError {
  if (error instanceof HeraldError) {
    return error;
  }
  return new HeraldError("internal", undefined, { cause: error });
}
