import type { Publication } from "./broker/broker.js";
import { textFrame } from "./transports/websocket-frames.js";

/**
 * A publication with its wire encodings, each built at most once and then
 * shared by every local subscriber that uses that format.
 */
export class EncodedPublication {
  private wsBytes: Buffer | undefined;
  private wsFrameBytes: Buffer | undefined;
  private jsonText: string | undefined;

  constructor(readonly publication: Publication) {}

  get channel(): string {
    return this.publication.channel;
  }

  get offset(): number {
    return this.publication.offset;
  }

  /** `{"channel","offset","data"}`: the event as SSE `data:` and long-poll items carry it. */
  get json(): string {
    if (this.jsonText === undefined) {
      const { channel, offset, data } = this.publication;
      this.jsonText = `{"channel":${JSON.stringify(channel)},"offset":${offset},"data":${data}}`;
    }
    return this.jsonText;
  }

  /** The WebSocket push message as UTF-8 bytes. */
  get ws(): Buffer {
    if (this.wsBytes === undefined) {
      const { channel, offset, data } = this.publication;
      this.wsBytes = Buffer.from(`{"type":"pub","channel":${JSON.stringify(channel)},"offset":${offset},"data":${data}}`);
    }
    return this.wsBytes;
  }

  /** The WebSocket push message as a complete text frame, header included. */
  get wsFrame(): Buffer {
    if (this.wsFrameBytes === undefined) {
      this.wsFrameBytes = textFrame(this.ws);
    }
    return this.wsFrameBytes;
  }
}
