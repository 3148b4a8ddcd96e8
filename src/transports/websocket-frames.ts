/**
 * Pre-framed WebSocket messages, built once per publication and written
 * as the same bytes to every subscribed connection's socket.
 */

const FIN_TEXT = 0x81;

/**
 * Wraps a UTF-8 payload in one unmasked, unfragmented text frame (RFC 6455
 * section 5.2): FIN and opcode 1, then the 7-bit, 16-bit or 64-bit payload
 * length. Server frames are never masked (section 5.1).
 */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = FIN_TEXT;
  if (headerLength === 2) {
    frame[1] = length;
  } else if (headerLength === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, headerLength);
  return frame;
}

/** A connection with frames waiting to be written. */
export interface Flushable {
  flush(): void;
}

/**
 * Connections that have frames waiting, written together once per turn of
 * the event loop (or after `delayMs`), so the events queued for one
 * connection in that time go out in one write. One timer serves every
 * connection; nothing is allocated per delivery but a slot in an array.
 */
export class FlushQueue {
  private pending: Flushable[] = [];
  private scheduled = false;

  constructor(private readonly delayMs: number) {}

  add(target: Flushable): void {
    this.pending.push(target);
    if (this.scheduled) {
      return;
    }
    this.scheduled = true;
    if (this.delayMs > 0) {
      setTimeout(this.run, this.delayMs);
    } else {
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const targets = this.pending;
    this.pending = [];
    for (const target of targets) {
      target.flush();
    }
  };
}
