import type { Publication } from "./broker/broker.js";
import type { ErrorCode } from "./errors.js";

/**
 * Typed lifecycle events of one node. The hub, the transports and the
 * server emit them; metrics, the admin page and tests listen, so none of
 * them has to parse log lines. Transports are named by their `name`
 * ("websocket", "sse", "poll"), which becomes the `transport` label.
 */
export type HeraldEvent =
  | { type: "connection.opened"; transport: string; connection: string }
  | {
      type: "connection.closed";
      transport: string;
      connection: string;
      /** WebSocket close code; undefined for transports without one. */
      code: number | undefined;
      /** Short fixed label, safe as a metric label value. */
      reason: string;
    }
  | { type: "auth.failed"; transport: string; code: ErrorCode }
  | { type: "subscription.added"; channel: string }
  | { type: "subscription.removed"; channel: string }
  /** A publication stored by the broker through this node. */
  | { type: "publication"; publication: Publication; bytes: number }
  /**
   * The hub handed a publication to its local subscribers: one event per
   * publication per node, whatever the subscriber count.
   */
  | { type: "delivery"; publication: Publication; subscribers: number; latencyMs: number }
  /** Messages for a client that were discarded instead of sent. */
  | { type: "drop"; transport: string; reason: DropReason; count: number }
  | { type: "slow_consumer"; transport: string; connection: string; bufferedBytes: number }
  | { type: "rate_limited"; transport: string; connection: string }
  | { type: "broker.error"; operation: BrokerOperation; error: unknown }
  /** The broker engine reconnected and may have missed publications. */
  | { type: "broker.reconnect" }
  | { type: "broker.availability"; available: boolean }
  | { type: "drain.started"; connections: number }
  | { type: "drain.finished"; timedOut: boolean; remaining: number };

export type HeraldEventType = HeraldEvent["type"];

export type DropReason = "slow_consumer" | "closing";

export type BrokerOperation = "publish" | "history" | "subscribe" | "unsubscribe" | "catch_up" | "session" | "engine";

export type EventListener = (event: HeraldEvent) => void;

/**
 * The node's event emitter. Listeners run synchronously in emit order, so
 * they must be cheap. A listener that throws is reported to
 * `onListenerError` and never breaks the emitter or the code that emitted.
 */
export class HeraldEvents {
  private listeners: EventListener[] = [];

  constructor(private readonly onListenerError: (error: unknown, event: HeraldEvent) => void = () => undefined) {}

  /** Adds a listener; returns the function that removes it. */
  on(listener: EventListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((existing) => existing !== listener);
    };
  }

  emit(event: HeraldEvent): void {
    // The array is replaced, never mutated, so a listener that adds or
    // removes listeners does not disturb this loop.
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error, event);
      }
    }
  }
}

/** Names of WebSocket close codes (RFC 6455 section 7.4.1 and Herald's 4xxx), for labels. */
const CLOSE_REASONS: Record<number, string> = {
  1000: "normal",
  1001: "going_away",
  1003: "unsupported_data",
  1005: "no_status",
  1006: "abnormal",
  1008: "policy_violation",
  1009: "message_too_big",
  1011: "internal_error",
  1013: "try_again_later",
  4001: "unauthorized",
  4003: "forbidden",
  4008: "slow_consumer",
  4029: "rate_limited",
};

/**
 * Returns the label of a close code. Codes a client may choose freely map
 * to "other", so the label set stays small.
 */
export function closeReason(code: number | undefined): string {
  if (code === undefined) {
    return "closed";
  }
  return CLOSE_REASONS[code] ?? "other";
}

/** Internal channels start with `$`, which client channel names may not contain. */
export function isInternalChannel(channel: string): boolean {
  return channel.startsWith("$");
}
