import type { Publication } from "./broker/broker.js";
import { encodeCursor } from "./cursor.js";
import { dataField } from "./transports/sse-wire.js";
import { textFrame } from "./transports/websocket-frames.js";

/**
 * A publication with its wire encodings, each built at most once and then
 * shared by every local subscriber that uses that format.
 */
export class EncodedPublication {
  private wsPayloadLength = 0;
  private wsPayload: Buffer | undefined;
  private wsFrameBytes: Buffer | undefined;
  private jsonText: string | undefined;
  private others: Map<string, unknown> | undefined;
  private sseEventBytes: Buffer | undefined;
  private sseDataBytes: Buffer | undefined;

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

  /** The WebSocket push message as UTF-8 bytes: a view into the frame, not a second copy. */
  get ws(): Buffer {
    this.wsPayload ??= this.wsFrame.subarray(this.wsFrame.length - this.wsPayloadLength);
    return this.wsPayload;
  }

  /** The WebSocket push message as a complete text frame, header included. */
  get wsFrame(): Buffer {
    if (this.wsFrameBytes === undefined) {
      const { channel, offset, data } = this.publication;
      const payload = Buffer.from(`{"type":"pub","channel":${JSON.stringify(channel)},"offset":${offset},"data":${data}}`);
      this.wsPayloadLength = payload.length;
      this.wsFrameBytes = textFrame(payload);
    }
    return this.wsFrameBytes;
  }

  /**
   * Returns the encoding named `format`, building it on first use; for
   * formats that live outside this file, such as gRPC's protobuf bytes.
   */
  shared<T, A>(format: string, build: (event: EncodedPublication, argument: A) => T, argument: A): T {
    this.others ??= new Map();
    let value = this.others.get(format) as T | undefined;
    if (value === undefined) {
      value = build(this, argument);
      this.others.set(format, value);
    }
    return value;
  }

  /**
   * The whole SSE event for a stream of this one channel: its `id:` is the
   * one-channel cursor, which depends on nothing but the publication.
   */
  get sseEvent(): Buffer {
    if (this.sseEventBytes === undefined) {
      const { channel, epoch, offset } = this.publication;
      const cursor = encodeCursor([channel], new Map([[channel, { epoch, offset }]]));
      this.sseEventBytes = Buffer.from(`id: ${cursor}\n${dataField(this.json)}`);
    }
    return this.sseEventBytes;
  }

  /** The `data:` lines and the blank line that end an SSE event, for streams that write their own `id:` line. */
  get sseData(): Buffer {
    if (this.sseDataBytes === undefined) {
      this.sseDataBytes = Buffer.from(dataField(this.json));
    }
    return this.sseDataBytes;
  }
}
