import { encodeCursor } from "../cursor.js";
import { channelQuery, closeCodeForError, closeCodeForStatus, fetchPositions, toClientError } from "./http.js";
import type { StreamPosition } from "./position.js";
import { HeraldClientError, type ClientTransport, type EventSourceConstructor, type EventSourceLike, type TransportHost } from "./types.js";

/**
 * Server-Sent Events: one stream for the whole channel set, opened with a
 * cursor built from the client's positions (`lastEventId`). A change of
 * channels reopens the stream for the new set. On any stream error the
 * EventSource is closed and the client reconnects with its own backoff
 * instead of the browser's, so fallback and jitter work alike everywhere.
 */
export class SseClientTransport implements ClientTransport {
  readonly name = "sse";
  private source: EventSourceLike | undefined;
  private controller: AbortController | undefined;
  private stopped = false;
  private isOpen = false;
  /** Counts stream starts, so a start overtaken by a newer one gives up. */
  private generation = 0;

  constructor(
    private readonly host: TransportHost,
    private readonly EventSourceClass: EventSourceConstructor,
  ) {}

  open(): void {
    void this.start();
  }

  channelsChanged(): void {
    void this.start();
  }

  close(): void {
    this.stopped = true;
    this.controller?.abort();
    this.source?.close();
  }

  private async start(): Promise<void> {
    const generation = ++this.generation;
    this.source?.close();
    this.source = undefined;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;

    const channels = this.host.channels();
    if (channels.length === 0) {
      this.markOpen();
      return;
    }
    try {
      const missing = channels.filter((channel) => this.host.position(channel) === undefined);
      if (missing.length > 0) {
        for (const [channel, position] of await fetchPositions(this.host, missing, controller.signal)) {
          this.host.setPosition(channel, position);
        }
      }
    } catch (error) {
      if (generation === this.generation && !this.stopped) {
        const failure = toClientError(error);
        this.fail(failure.status === undefined ? 1006 : closeCodeForStatus(failure.status), failure.message, failure);
      }
      return;
    }
    if (generation !== this.generation || this.stopped) {
      return;
    }

    const positions = new Map<string, StreamPosition>();
    for (const channel of channels) {
      positions.set(channel, this.host.position(channel)!);
    }
    const query = channelQuery(channels, { lastEventId: encodeCursor(channels, positions), token: this.host.token });
    let source: EventSourceLike;
    try {
      source = new this.EventSourceClass(`${this.host.url}/sse?${query}`);
    } catch (error) {
      this.fail(1006, `the event stream could not start: ${String(error)}`);
      return;
    }
    this.source = source;
    let started = false;
    source.addEventListener("subscribed", (event) => {
      started = true;
      const body = JSON.parse(event.data) as { channels: Array<{ channel: string; epoch: string; offset: number }> };
      for (const entry of body.channels) {
        this.host.subscribed(entry.channel, { epoch: entry.epoch, offset: entry.offset });
      }
      this.markOpen();
    });
    source.addEventListener("gap", (event) => {
      const gap = JSON.parse(event.data) as { channel: string; epoch: string; offset: number };
      this.host.gap(gap.channel, { epoch: gap.epoch, offset: gap.offset });
    });
    // The node's last event before it ends a stream it will not serve any
    // more, such as one whose token expired.
    source.addEventListener("close", (event) => {
      const body = JSON.parse(event.data) as { error?: { code?: string; message?: string } };
      const code = body.error?.code ?? "closed";
      const message = body.error?.message ?? "the node ended the event stream";
      const closeCode = closeCodeForError(code);
      this.fail(closeCode, message, new HeraldClientError(code, message, closeCode));
    });
    source.onmessage = (event) => {
      const message = JSON.parse(event.data) as { channel: string; offset: number; data: unknown };
      this.host.event(message.channel, message.offset, message.data);
    };
    source.onerror = () => {
      if (this.source !== source) {
        return;
      }
      if (started) {
        this.fail(1006, "the event stream failed or ended");
      } else {
        source.close();
        void this.findRejection(channels, generation, controller.signal);
      }
    };
  }

  /**
   * Finds out why a stream failed before it started. An EventSource
   * cannot read the node's error, so a rejected token would look like a
   * network failure and the client would reconnect with it for ever. A
   * poll that does not wait checks the same token and channels and reads
   * the error. A 4xx closes the client or renews the token through
   * getToken, and anything else counts as a failed connection.
   */
  private async findRejection(channels: readonly string[], generation: number, signal: AbortSignal): Promise<void> {
    try {
      await fetchPositions(this.host, channels, signal);
    } catch (error) {
      const failure = toClientError(error);
      if (generation === this.generation && failure.status !== undefined && failure.status >= 400 && failure.status < 500) {
        this.fail(closeCodeForStatus(failure.status), failure.message, failure);
        return;
      }
    }
    if (generation === this.generation) {
      this.fail(1006, "the event stream failed or ended");
    }
  }

  private fail(code: number, reason: string, error?: HeraldClientError): void {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    this.source?.close();
    this.host.closed({ code, reason, ...(error === undefined ? {} : { error }) });
  }

  private markOpen(): void {
    if (!this.isOpen) {
      this.isOpen = true;
      this.host.opened();
    }
  }
}
