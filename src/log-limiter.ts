import type { Logger } from "./log.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

interface Window {
  level: LogLevel;
  logged: number;
  suppressed: number;
}

/**
 * Keeps a repeated log line from flooding the output: each message is
 * written at most `limit` times per interval, and at the end of an
 * interval in which lines were held back, one summary line gives their
 * count. Lines are grouped by their fixed message text.
 */
export class LogLimiter {
  private windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly limit = 10,
    private readonly intervalMs = 10_000,
  ) {}

  /** Writes `message` through `logger` (the node's or a child) unless it is over its limit. */
  write(logger: Logger, level: LogLevel, context: object, message: string): void {
    let window = this.windows.get(message);
    if (!window) {
      window = { level, logged: 0, suppressed: 0 };
      this.windows.set(message, window);
      this.schedule();
    }
    if (window.logged < this.limit) {
      window.logged++;
      logger[level](context, message);
    } else {
      window.suppressed++;
    }
  }

  /** Writes the pending summaries and stops the timer. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private schedule(): void {
    if (this.timer !== undefined) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.intervalMs);
    this.timer.unref();
  }

  private flush(): void {
    const windows = this.windows;
    this.windows = new Map();
    for (const [message, window] of windows) {
      if (window.suppressed > 0) {
        this.log[window.level]({ repeated: message, suppressed: window.suppressed, intervalMs: this.intervalMs }, "repeated log lines suppressed");
      }
    }
  }
}
