import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

/** One frame from the server, unmasked as RFC 6455 requires of servers. */
export interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
}

export const OPCODE_TEXT = 0x1;
export const OPCODE_CLOSE = 0x8;

/**
 * A WebSocket client on a bare TCP socket, so a test can see the frames
 * and the TCP FIN as they arrive and can misbehave on purpose: stay silent
 * after a close frame, or stop reading.
 */
export class RawWebSocket {
  readonly frames: Frame[] = [];
  /** Resolves with Date.now() when the server ends or drops the TCP connection. */
  readonly ended: Promise<number>;
  /** Whether the server ended the connection with a FIN, as opposed to a reset. */
  finReceived = false;
  private pending = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket, rest: Buffer) {
    this.ended = new Promise((resolve) => socket.once("close", () => resolve(Date.now())));
    socket.once("end", () => {
      this.finReceived = true;
    });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => undefined);
    this.onData(rest);
  }

  /** Opens a TCP connection and does the upgrade handshake on `path`. */
  static async open(port: number, path = "/ws"): Promise<RawWebSocket> {
    const socket = connect(port, "127.0.0.1");
    const key = randomBytes(16).toString("base64");
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const { head, rest } = await readHead(socket);
    if (!head.startsWith("HTTP/1.1 101")) {
      socket.destroy();
      throw new Error(`upgrade failed: ${head.split("\r\n")[0]}`);
    }
    return new RawWebSocket(socket, rest);
  }

  /** Sends a masked text frame (client frames must be masked). */
  sendText(text: string): void {
    this.socket.write(maskedFrame(OPCODE_TEXT, Buffer.from(text)));
  }

  /** Sends a masked close frame with a code. */
  sendClose(code: number): void {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.socket.write(maskedFrame(OPCODE_CLOSE, payload));
  }

  async waitForFrame(opcode: number, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find((frame) => frame.opcode === opcode);
      if (found) {
        return found;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for a frame with opcode ${opcode}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
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

  private onData(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const frame = parseFrame(this.pending);
      if (!frame) {
        break;
      }
      this.pending = this.pending.subarray(frame.size);
      this.frames.push({ opcode: frame.opcode, payload: frame.payload });
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) {
      wake();
    }
  }
}

/** Splits a close frame's payload into its code and reason. */
export function closeDetails(frame: Frame): { code: number; reason: string } {
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString("utf8") };
}

/** Reads up to the end of the HTTP response head; returns it and the bytes after it. */
export function readHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end !== -1) {
        socket.off("data", onData);
        socket.off("error", reject);
        socket.off("close", onClose);
        resolve({ head: buffered.subarray(0, end).toString("latin1"), rest: buffered.subarray(end + 4) });
      }
    };
    const onClose = () => reject(new Error("connection closed before the response head"));
    socket.on("data", onData);
    socket.once("error", reject);
    socket.once("close", onClose);
  });
}

function parseFrame(buffer: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
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

function maskedFrame(opcode: number, payload: Buffer): Buffer {
  if (payload.length > 125) {
    throw new Error("this helper only sends frames of up to 125 bytes");
  }
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}
