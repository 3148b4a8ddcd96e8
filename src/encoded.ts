import type { Publication } from "./broker/broker.js";

/**
 * A publication with its wire encodings, each built at most once and then
 * shared by every local subscriber that uses that format.
 */
export class EncodedPublication {
  private wsBytes: Buffer | undefined;
  private jsonText: string | undefined;
  private others: Map<string, unknown> | undefined;

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
}
