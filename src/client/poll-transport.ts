import { decodeCursor, encodeCursor } from "../cursor.js";
import { channelQuery, closeCodeForStatus, fetchPositions, requestJson, toClientError } from "./http.js";
import type { StreamPosition } from "./position.js";
import type { ClientTransport, TransportHost } from "./types.js";

/**
 * Long-polling: one request at a time, each from a cursor built from the
 * client's positions, so a poll restarted for a new channel set, or sent
 * to another node, resumes exactly where the last one ended.
 */
export class PollClientTransport implements ClientTransport {
  readonly name = "poll";
  private controller: AbortController | undefined;
  private stopped = false;
  private isOpen = false;
  /** Wakes a loop that waits for channels. */
  private wake: (() => void) | undefined;

  constructor(private readonly host: TransportHost) {}

  open(): void {
    void this.run();
  }

  channelsChanged(): void {
    // The running request names the old set; aborting it starts one for the new set.
    this.controller?.abort();
    this.wake?.();
  }

  close(): void {
    this.stopped = true;
    this.controller?.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const channels = this.host.channels();
      const controller = new AbortController();
      this.controller = controller;
      try {
        if (channels.length === 0) {
          this.markOpen();
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        const missing = channels.filter((channel) => this.host.position(channel) === undefined);
        if (missing.length > 0) {
          const tops = await fetchPositions(this.host, missing, controller.signal);
          for (const [channel, position] of tops) {
            this.host.setPosition(channel, position);
          }
          continue;
        }
        await this.poll(channels, controller.signal);
      } catch (error) {
        if (this.stopped) {
          return;
        }
        if (controller.signal.aborted) {
          continue;
        }
        const failure = toClientError(error);
        const code = failure.status === undefined ? 1006 : closeCodeForStatus(failure.status);
        this.stopped = true;
        this.host.closed({ code, reason: failure.message, error: failure });
        return;
      }
    }
  }

  /** Sends one poll and hands its gaps, events and cursor to the client. */
  private async poll(channels: string[], signal: AbortSignal): Promise<void> {
    const positions = new Map<string, StreamPosition>();
    for (const channel of channels) {
      positions.set(channel, this.host.position(channel)!);
    }
    const cursor = encodeCursor(channels, positions);
    // The first poll of a connection does not wait, so the client learns at once that it is connected.
    const timeout = this.isOpen ? undefined : "0";
    const { body, response } = await requestJson(this.host, `/poll?${channelQuery(channels, { cursor, timeout })}`, { signal });
    if (this.stopped || signal.aborted) {
      return;
    }
    this.markOpen();
    for (const gap of body.gaps ?? []) {
      this.host.gap(gap.channel, { epoch: gap.epoch, offset: gap.offset });
    }
    for (const event of body.events ?? []) {
      this.host.event(event.channel, event.offset, event.data);
    }
    for (const [channel, position] of decodeCursor(String(body.cursor), channels)) {
      this.host.setPosition(channel, position);
    }
    if (response.headers.get("Retry-After") !== null && !this.stopped) {
      // The node is draining: reconnect with backoff, possibly to another node.
      this.stopped = true;
      this.host.closed({ code: 1001, reason: "the node is draining" });
    }
  }

  private markOpen(): void {
    if (!this.isOpen) {
      this.isOpen = true;
      this.host.opened();
    }
  }
}
