import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

/**
 * A WebSocket client on a bare TCP socket, for tests that need control the
 * ws library does not give: stop reading at will, see every frame.
 */
export class RawWebSocket {
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  /** Text frames received, decoded. */
  readonly texts: string[] = [];
  /** Close code of the server's close frame, once one was read. */
  closeCode: number | undefined;
  ended = false;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.wake();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("error", () => undefined);
  }

  /** Connects and completes the upgrade handshake. */
  static async open(port: number, path = "/ws"): Promise<RawWebSocket> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const key = randomBytes(16).toString("base64");
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let head = Buffer.alloc(0);
    while (!head.includes("\r\n\r\n")) {
      const chunk = await new Promise<Buffer>((resolve, reject) => {
        socket.once("data", resolve);
        socket.once("error", reject);
      });
      head = Buffer.concat([head, chunk]);
    }
    const end = head.indexOf("\r\n\r\n") + 4;
    const status = head.subarray(0, head.indexOf("\r\n")).toString();
    if (!status.includes(" 101 ")) {
      socket.destroy();
      throw new Error(`upgrade failed: ${status}`);
    }
    const client = new RawWebSocket(socket);
    if (end < head.length) {
      socket.emit("data", head.subarray(end));
    }
    return client;
  }

  /** Sends a masked text frame, as RFC 6455 section 5.3 requires of clients. */
  sendText(text: string): void {
    this.socket.write(encodeClientFrame(0x1, Buffer.from(text)));
  }

  /** Sends a ping control frame. */
  ping(): void {
    this.socket.write(encodeClientFrame(0x9, Buffer.alloc(0)));
  }

  /** Stops reading: the kernel buffers fill and the server's writes back up. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Resolves once `test` holds, checked after each chunk read. */
  async until(test: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (this.ended && !test()) {
        throw new Error("the connection ended first");
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((wake) => wake());
  }

  private parse(): void {
    for (;;) {
      const frame = decodeServerFrame(this.buffer);
      if (!frame) {
        return;
      }
      this.buffer = this.buffer.subarray(frame.size);
      if (frame.opcode === 0x1) {
        this.texts.push(...frame.payload.toString().split("\n"));
      } else if (frame.opcode === 0x8) {
        this.closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
      }
    }
  }
}

export function encodeClientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const length = payload.length;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.alloc(2);
    header[1] = 0x80 | length;
  } else if (length < 65536) {
    header = Buffer.alloc(4);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  header[0] = 0x80 | opcode;
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    masked[i] = payload[i]! ^ mask[i % 4]!;
  }
  return Buffer.concat([header, mask, masked]);
}

function decodeServerFrame(buffer: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buffer.length < 2) {
    return undefined;
  }
  const opcode = buffer[0]! & 0x0f;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  if (buffer.length < offset + length) {
    return undefined;
  }
  return { opcode, payload: buffer.subarray(offset, offset + length), size: offset + length };
}
