import type { ServerResponse } from "node:http";
import { watchExpiry } from "../auth/expiry.js";
import type { Identity } from "../auth/identity.js";
import type { StreamPosition } from "../broker/broker.js";
import { encodeCursor } from "../cursor.js";
import type { EncodedPublication } from "../encoded.js";
import { protocolError, type HeraldError } from "../errors.js";
import type { Hub, SubscribeResult, Subscriber, Subscription } from "../hub.js";
import type { ConnectionMonitor } from "./connection-monitor.js";
import { commentLine, formatEvent, HEARTBEAT, retryField } from "./sse-wire.js";

/**
 * Response headers of every event stream, also of the one sent while
 * draining. The CORS headers come from applyCors, set before these.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream",
  // no-cache keeps proxies from serving a stored stream; nothing compresses
  // it, since a compressor would hold events back to fill its blocks.
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
};

/** Heartbeats in a row during which no buffered byte reached the client before the stream is cut. */
const STALLED_HEARTBEATS_LIMIT = 2;

export interface SseStreamOptions {
  readonly hub: Hub;
  /** Reports the stream's lifecycle and carries its child logger. */
  readonly monitor: ConnectionMonitor;
  readonly retryMs: number;
  readonly outboundBufferBytes: number;
  readonly onClosed: (stream: SseStream) => void;
}

/**
 * One event stream: its subscriptions, its cursor over all its channels,
 * and the liveness of the client reading it. Works the same over HTTP/1.1
 * and HTTP/2 (through the compatibility response).
 */
export class SseStream implements Subscriber {
  private readonly subscriptions: Subscription[] = [];
  /** Last position sent per channel; every event's `id:` encodes all of them. */
  private readonly positions = new Map<string, StreamPosition>();
  private started = false;
  private closed = false;
  private draining = false;
  /** The hub gave up buffering live events while history was read. */
  private overflowed = false;
  /** Bytes written so far; minus the response's buffered bytes, the bytes the client took. */
  private written = 0;
  private flushedAtLastBeat = 0;
  private stalledBeats = 0;
  /** Close reason label, set by whichever side ends the stream first. */
  private endReason: string | undefined;
  /** Cancels the timer that ends the stream when its token expires. */
  private cancelExpiry: () => void = () => undefined;

  constructor(
    private readonly res: ServerResponse,
    readonly channels: readonly string[],
    private readonly options: SseStreamOptions,
  ) {}

  /**
   * Subscribes to every channel, then in one tick sends the headers,
   * `retry:`, the `subscribed` event, any gap notices and recovered
   * events, and goes live. Live events that arrive while history is read
   * wait in their subscription until activate(), so none is lost or sent
   * twice. Throws before anything is written when a subscription fails.
   * A stream opened with a token that has an expiry ends at that expiry.
   */
  async start(since: ReadonlyMap<string, StreamPosition> | undefined, identity?: Identity): Promise<void> {
    const hub = this.options.hub;
    const settled = await Promise.allSettled(this.channels.map((channel) => hub.subscribe(this, channel, since?.get(channel))));
    const results: SubscribeResult[] = [];
    for (const outcome of settled) {
      if (outcome.status === "fulfilled") {
        results.push(outcome.value);
        this.subscriptions.push(outcome.value.subscription);
      }
    }
    const failure = settled.find((outcome) => outcome.status === "rejected");
    if (failure !== undefined || this.closed || this.draining || this.overflowed) {
      if (this.overflowed) {
        this.endReason ??= "try_again_later";
      } else if (this.draining) {
        this.endReason ??= "going_away";
      }
      this.release();
      if (failure !== undefined) {
        throw failure.reason;
      }
      if (!this.closed) {
        // The client comes back with the same cursor and loses nothing.
        sendReconnectLater(this.res, this.options.retryMs);
      }
      return;
    }

    this.started = true;
    this.res.writeHead(200, SSE_HEADERS);
    this.write(retryField(this.options.retryMs));

    const gaps: Array<{ channel: string; position: StreamPosition }> = [];
    const channelStates = results.map((result, i) => {
      const channel = this.channels[i]!;
      const requested = since?.get(channel);
      const resumed = requested !== undefined && result.recovered;
      if (requested !== undefined && !result.recovered) {
        gaps.push({ channel, position: { epoch: result.epoch, offset: result.top } });
      }
      // A gap channel keeps its old position until the gap event, so a
      // client cut off before that event gets the gap again.
      this.positions.set(channel, requested ?? { epoch: result.epoch, offset: result.top });
      return { channel, epoch: result.epoch, offset: resumed ? requested.offset : result.top, recovered: result.recovered };
    });
    this.write(formatEvent("subscribed", this.cursor(), JSON.stringify({ channels: channelStates })));

    for (const { channel, position } of gaps) {
      this.sendGap(channel, position);
    }
    for (const result of results) {
      for (const event of result.publications) {
        this.deliver(event);
      }
      result.subscription.activate();
    }
    if (identity !== undefined) {
      this.cancelExpiry = watchExpiry(identity, () =>
        this.endWithError(protocolError("token_expired", "The token expired; open a new stream with a new token and the last event id.")),
      );
    }
  }

  deliver(event: EncodedPublication): void {
    if (this.closed) {
      this.options.monitor.drop("closing");
      return;
    }
    this.positions.set(event.channel, { epoch: event.publication.epoch, offset: event.offset });
    if (this.channels.length === 1) {
      this.write(event.sseEvent);
      return;
    }
    // Corked, the per-stream id line and the shared data go out as one chunk.
    this.res.cork();
    this.write(`id: ${this.cursor()}\n`);
    this.write(event.sseData);
    this.res.uncork();
  }

  gap(subscription: Subscription, position: StreamPosition): void {
    if (this.started) {
      this.sendGap(subscription.channel, position);
    }
  }

  /** Called only before activate(), so while start() still waits and nothing is written yet. */
  overflow(): void {
    this.options.monitor.log.info({ channels: this.channels.length }, "sse stream not started: too many events while recovering");
    this.overflowed = true;
  }

  /**
   * Writes a heartbeat, or cuts the stream when the client has taken no
   * byte of its buffered output for several heartbeats in a row: a peer
   * that vanished without a FIN, or one that stopped reading.
   *
   * NOTE: a vanished peer's heartbeats sit in the kernel's send buffer,
   * not in writableLength, so an idle stream to such a peer stays until
   * the kernel stops retransmitting (about 15 min with Linux defaults).
   */
  heartbeat(): void {
    if (!this.started || this.closed) {
      return;
    }
    const buffered = this.res.writableLength;
    const flushed = this.written - buffered;
    if (buffered > 0 && flushed <= this.flushedAtLastBeat) {
      this.stalledBeats++;
    } else {
      this.stalledBeats = 0;
    }
    this.flushedAtLastBeat = flushed;
    if (this.stalledBeats >= STALLED_HEARTBEATS_LIMIT) {
      this.options.monitor.stalled(buffered);
      this.destroy("stalled");
      return;
    }
    this.write(HEARTBEAT);
  }

  /** Sends a jittered `retry:` and ends the stream, so the client reconnects, likely to another node. */
  drain(): void {
    this.draining = true;
    if (this.started && !this.closed) {
      this.endReason ??= "going_away";
      this.write(retryField(jitteredRetry(this.options.retryMs)));
      this.res.end();
    }
  }

  /**
   * Sends a `close` event whose data is `{"error": {"code", "message"}}`,
   * then ends the stream. The event has no `id:`, so the client's last
   * event id stays the cursor of the last event it received.
   */
  endWithError(error: HeraldError): void {
    if (!this.started || this.closed) {
      return;
    }
    this.endReason ??= error.code;
    this.write(formatEvent("close", undefined, JSON.stringify({ error: error.toJSON() })));
    if (!this.closed) {
      this.res.end();
    }
  }

  /**
   * Cuts the connection (the HTTP/2 stream alone over HTTP/2) and releases
   * the subscriptions at once. `reason` labels the close unless the stream
   * was already ending for another reason.
   */
  destroy(reason = "going_away"): void {
    this.endReason ??= reason;
    this.close();
    this.res.destroy();
  }

  /** Labels the close of a request rejected with this error code before the stream started. */
  rejected(code: string): void {
    this.endReason ??= code;
  }

  /** Releases the subscriptions and reports the close; called once the response closed. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.cancelExpiry();
    this.release();
    this.options.monitor.closed(undefined, this.endReason ?? "client_closed");
    this.options.onClosed(this);
  }

  private release(): void {
    for (const subscription of this.subscriptions) {
      this.options.hub.unsubscribe(subscription);
    }
    this.subscriptions.length = 0;
  }

  private sendGap(channel: string, position: StreamPosition): void {
    this.positions.set(channel, position);
    const data = JSON.stringify({ channel, epoch: position.epoch, offset: position.offset });
    this.write(formatEvent("gap", this.cursor(), data));
  }

  private cursor(): string {
    return encodeCursor(this.channels, this.positions);
  }

  /**
   * Writes unless the client is too slow: once its unsent output passes
   * the outbound limit the stream is cut, which frees that memory, and the
   * client resumes from the last event it received.
   */
  private write(chunk: string | Buffer): void {
    if (this.closed) {
      return;
    }
    if (this.res.writableLength > this.options.outboundBufferBytes) {
      this.options.monitor.drop("slow_consumer");
      this.options.monitor.slowConsumer(this.res.writableLength);
      this.destroy("slow_consumer");
      return;
    }
    this.written += chunk.length;
    this.res.write(chunk);
  }
}

/**
 * Sends the response to an SSE request that this node will not serve now:
 * 200, a jittered `retry:` and the end. `reason`, an error code, goes in a
 * comment line that EventSource ignores and people reading the stream see.
 */
export function sendReconnectLater(res: ServerResponse, retryMs: number, reason?: string): void {
  res.writeHead(200, SSE_HEADERS);
  res.end((reason === undefined ? "" : commentLine(reason)) + retryField(jitteredRetry(retryMs)));
}

/** Spread of the reconnect delay sent while draining: between retryMs and this many times it. */
const DRAIN_RETRY_SPREAD = 5;

function jitteredRetry(retryMs: number): number {
  return retryMs * (1 + Math.random() * (DRAIN_RETRY_SPREAD - 1));
}
