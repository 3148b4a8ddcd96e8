// A minimal RFC 6455, Server-Sent Events and HTTP long-poll client over
// node:net for the load client. It parses server frames, event-stream
// lines and response bodies in place, without copying payloads or
// decoding text, so the client spends less CPU per delivery than the
// servers it measures. Every server under test gets this same client;
// only the small protocol adapter in protocols.mjs differs.
import { randomBytes } from "node:crypto";
import { connect } from "node:net";

const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;

/**
 * Opens a WebSocket (`stream: "websocket"`), an event stream (`"sse"`) or
 * a keep-alive HTTP connection for long-polls (`"poll"`) over loopback.
 * `handler.attach(connection)` is called first. Then
 * `handler.onText(buffer, start, end)` gets each data frame's payload,
 * each event-stream `data:` line's value or each response body, as a
 * range of a received chunk that is only valid during the call. Resolves
 * once the response head (101, or 200 for SSE) is read, or at once for
 * "poll".
 */
export function openRawStream({ host, port, path, localAddress, handler, stream = "websocket" }) {
  const expected = stream === "sse" ? "HTTP/1.1 200" : "HTTP/1.1 101";
  return new Promise((resolve, reject) => {
    let connection;
    let head = Buffer.alloc(0);

    // Reads land in one buffer shared by every socket of the process, and
    // go to this callback instead of through the stream's 'data' events:
    // both save work on each read, which here is about one per delivery.
    const onRead = (length, buffer) => {
      const chunk = buffer.subarray(0, length);
      if (connection.open) {
        connection.onData(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > 16_384) fail(new Error("handshake response over 16 KiB"));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
      if (!statusLine.startsWith(expected)) {
        fail(new Error(`upgrade rejected: ${statusLine}`));
        return;
      }
      socket.off("error", fail);
      socket.on("error", () => connection.onClose());
      socket.on("close", () => connection.onClose());
      connection.open = true;
      resolve(connection);
      const rest = head.subarray(end + 4);
      head = undefined;
      if (rest.length > 0) connection.onData(rest);
    };
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };

    const socket = connect({ host, port, localAddress, noDelay: true, onread: { buffer: sharedReadBuffer, callback: onRead } });
    connection = new RawConnection(socket, handler, stream);
    // The server may send its first message in the same read as the 101.
    handler.attach(connection);
    socket.once("error", fail);
    socket.once("connect", () => {
      if (stream === "poll") {
        // Plain HTTP/1.1 keep-alive: the protocol adapter writes each request itself.
        socket.off("error", fail);
        socket.on("error", () => connection.onClose());
        socket.on("close", () => connection.onClose());
        connection.open = true;
        resolve(connection);
        return;
      }
      socket.write(
        stream === "sse"
          ? `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`
          : `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\n` +
              `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
              "Sec-WebSocket-Version: 13\r\n\r\n",
      );
    });
  });
}

const sharedReadBuffer = Buffer.alloc(256 * 1024);

class RawConnection {
  /** Unparsed bytes of a frame split across reads. */
  rest = undefined;
  open = false;
  closed = false;

  constructor(socket, handler, stream) {
    this.socket = socket;
    this.handler = handler;
    this.stream = stream;
  }

  onData(chunk) {
    if (this.stream === "sse") {
      this.onEventStreamData(chunk);
      return;
    }
    if (this.stream === "poll") {
      this.onResponseData(chunk);
      return;
    }
    const buffer = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    let position = 0;

    while (buffer.length - position >= 2) {
      const first = buffer[position];
      let length = buffer[position + 1] & 0x7f;
      let header = 2;
      if (length === 126) {
        if (buffer.length - position < 4) break;
        length = buffer.readUInt16BE(position + 2);
        header = 4;
      } else if (length === 127) {
        if (buffer.length - position < 10) break;
        length = Number(buffer.readBigUInt64BE(position + 2));
        header = 10;
      }
      const start = position + header;
      const end = start + length;
      if (end > buffer.length) break;

      const opcode = first & 0x0f;
      const fin = (first & 0x80) !== 0;
      if ((opcode === OPCODE_TEXT || opcode === OPCODE_BINARY) && fin) {
        this.handler.onText(buffer, start, end);
      } else if (opcode === OPCODE_TEXT || opcode === OPCODE_BINARY || opcode === OPCODE_CONTINUATION) {
        // No server under test fragments its messages; count it rather than reassemble.
        this.handler.onUnexpected("fragmented frame");
      } else if (opcode === OPCODE_PING) {
        this.send(buffer.subarray(start, end), 0xa);
      } else if (opcode === OPCODE_CLOSE) {
        this.socket.end();
      }
      position = end;
    }

    if (position < buffer.length) {
      // Copy, so a small leftover does not pin the whole read buffer.
      this.rest = Buffer.from(buffer.subarray(position));
    }
  }

  /**
   * Hands over each complete `data:` line. Other lines (`id:`, `event:`,
   * `retry:`, comments, and the chunk-size lines of chunked transfer
   * coding) are skipped. This relies on each server writing an event in
   * one write, so that chunk framing never splits a line.
   */
  onEventStreamData(chunk) {
    const buffer = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    let lineStart = 0;
    for (;;) {
      const lineEnd = buffer.indexOf(0x0a, lineStart);
      if (lineEnd === -1) break;
      if (
        buffer[lineStart] === 0x64 /* d */ &&
        buffer[lineStart + 1] === 0x61 /* a */ &&
        buffer[lineStart + 4] === 0x3a /* : */
      ) {
        const valueStart = buffer[lineStart + 5] === 0x20 ? lineStart + 6 : lineStart + 5;
        this.handler.onText(buffer, valueStart, lineEnd);
      }
      lineStart = lineEnd + 1;
    }
    if (lineStart < buffer.length) {
      this.rest = Buffer.from(buffer.subarray(lineStart));
    }
  }

  /**
   * Hands over each complete HTTP response body framed by Content-Length
   * (the only framing Herald's /poll uses), then the next response.
   */
  onResponseData(chunk) {
    const buffer = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    let position = 0;
    for (;;) {
      const headEnd = buffer.indexOf("\r\n\r\n", position);
      if (headEnd === -1) break;
      const lengthAt = buffer.indexOf("Content-Length: ", position);
      if (lengthAt === -1 || lengthAt > headEnd) {
        this.handler.onUnexpected("response without Content-Length");
        this.socket.destroy();
        return;
      }
      const length = Number.parseInt(buffer.toString("latin1", lengthAt + 16, lengthAt + 26), 10);
      const bodyStart = headEnd + 4;
      if (bodyStart + length > buffer.length) break;
      if (buffer.toString("latin1", position + 9, position + 12) === "200") {
        this.handler.onText(buffer, bodyStart, bodyStart + length);
      } else {
        this.handler.onUnexpected(`response ${buffer.toString("latin1", position, position + 12)}`);
      }
      position = bodyStart + length;
    }
    if (position < buffer.length) {
      this.rest = Buffer.from(buffer.subarray(position));
    }
  }

  /** Writes raw bytes, such as an HTTP request, to the socket. */
  write(text) {
    this.socket.write(text);
  }

  onClose() {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose?.();
  }

  /** Sends a masked frame (RFC 6455 section 5.3: every client frame is masked). */
  send(payload, opcode = OPCODE_TEXT) {
    const data = typeof payload === "string" ? Buffer.from(payload) : payload;
    const extended = data.length > 125 ? 2 : 0;
    if (data.length > 65_535) throw new Error("client frames over 64 KiB are not needed here");
    const frame = Buffer.allocUnsafe(2 + extended + 4 + data.length);
    frame[0] = 0x80 | opcode;
    if (extended) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(data.length, 2);
    } else {
      frame[1] = 0x80 | data.length;
    }
    const maskAt = 2 + extended;
    randomBytes(4).copy(frame, maskAt);
    for (let i = 0; i < data.length; i++) {
      frame[maskAt + 4 + i] = data[i] ^ frame[maskAt + (i & 3)];
    }
    this.socket.write(frame);
  }

  close() {
    this.socket.destroy();
  }
}
