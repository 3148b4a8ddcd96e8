import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Creates the node's root logger. Fields that may hold credentials are
 * redacted wherever they appear, so a token or key never reaches the log
 * even when a whole request or config object is logged by mistake.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: { service: "herald" },
    redact: {
      paths: [
        "token",
        "*.token",
        "apiKey",
        "*.apiKey",
        "apiKeys",
        "*.apiKeys",
        "adminToken",
        "*.adminToken",
        "authorization",
        "*.authorization",
        "headers.authorization",
        "*.headers.authorization",
        "headers.cookie",
        "*.headers.cookie",
      ],
      censor: "[redacted]",
    },
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
