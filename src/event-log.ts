import type { HeraldEvents } from "./events.js";
import type { Logger } from "./log.js";
import type { LogLimiter } from "./log-limiter.js";

/**
 * Logs the hub's broker events, which happen outside any connection.
 * Connection events are logged by ConnectionMonitor with the
 * connection's child logger, and the server logs its own start, drain
 * and stop.
 */
export function logBrokerEvents(events: HeraldEvents, log: Logger, limiter: LogLimiter): () => void {
  return events.on((event) => {
    switch (event.type) {
      case "broker.error":
        limiter.write(log, "error", { err: event.error, operation: event.operation }, "broker operation failed");
        return;
      case "broker.reconnect":
        log.warn("broker reconnected; catching channels up from history");
        return;
      case "broker.availability":
        if (event.available) {
          log.info("broker available");
        } else {
          log.warn("broker unavailable");
        }
        return;
      default:
        return;
    }
  });
}
