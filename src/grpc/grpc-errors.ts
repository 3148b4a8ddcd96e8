import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { toHeraldError, type HeraldError } from "../errors.js";

/** gRPC status for each HTTP status that Herald's error codes carry. */
const STATUS_BY_HTTP: Record<number, status> = {
  400: status.INVALID_ARGUMENT,
  401: status.UNAUTHENTICATED,
  403: status.PERMISSION_DENIED,
  404: status.NOT_FOUND,
  405: status.UNIMPLEMENTED,
  413: status.INVALID_ARGUMENT,
  429: status.RESOURCE_EXHAUSTED,
  500: status.INTERNAL,
  503: status.UNAVAILABLE,
};

/**
 * Maps a Herald error to a gRPC error. The stable Herald code travels in
 * the `herald-error-code` trailer, so clients can tell apart errors that
 * share a gRPC status.
 */
export function toGrpcError(error: unknown): Partial<ServiceError> {
  const herald: HeraldError = toHeraldError(error);
  const metadata = new Metadata();
  metadata.set("herald-error-code", herald.code);
  return {
    code: herald.code === "slow_consumer" ? status.RESOURCE_EXHAUSTED : (STATUS_BY_HTTP[herald.status] ?? status.UNKNOWN),
    details: herald.message,
    metadata,
  };
}
