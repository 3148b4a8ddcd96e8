// The load client's adapters, one per server protocol. A push is checked
// by scanning its bytes for three numbers: the server's per-channel
// sequence (Herald's "offset", the peers' "seq"), the channel index "bx"
// and the publish timestamp "bt" that the publisher put in the data. The
// rare replies and acknowledgements are parsed with JSON.parse.
//
// Socket.IO is spoken as hand-parsed Engine.IO v4 / Socket.IO v5 packets
// over the same raw client, so its client costs the same as the others':
// "0{...}" open, "40" namespace connect, "2"/"3" ping and pong,
// "42[...]" events.

const PUB_PREFIX = Buffer.from('{"type":"pub"');
const SOCKET_IO_PUB_PREFIX = Buffer.from('42["pub"');
const NEWLINE = 0x0a;

/** Reads the unsigned integer that follows `key` at or after `from`; -1 if absent. */
export function numberAfter(buffer, key, from, end) {
  let index = buffer.indexOf(key, from);
  if (index === -1 || index >= end) return -1;
  index += key.length;
  // Skip the closing quote, an escaping backslash and the colon.
  while (index < end && (buffer[index] < 0x30 || buffer[index] > 0x39)) index++;
  let value = 0;
  while (index < end) {
    const digit = buffer[index] - 0x30;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
    index++;
  }
  return value;
}

function startsWith(buffer, prefix, start, end) {
  return end - start >= prefix.length && buffer.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
}

const herald = {
  name: "herald",
  path: "/ws",
  sequenceKey: Buffer.from('"offset"'),
  onOpen(connection) {
    connection.channels.forEach((channel, slot) => {
      const since = connection.since(slot);
      connection.send(JSON.stringify({ id: slot + 1, type: "subscribe", channel: channel.name, ...(since && { since }) }));
    });
  },
  onText(connection, buffer, start, end) {
    // A Herald text frame may carry several messages separated by "\n".
    let lineStart = start;
    while (lineStart < end) {
      let lineEnd = buffer.indexOf(NEWLINE, lineStart);
      if (lineEnd === -1 || lineEnd > end) lineEnd = end;
      if (startsWith(buffer, PUB_PREFIX, lineStart, lineEnd)) {
        connection.onPush(buffer, lineStart, lineEnd, this.sequenceKey);
      } else {
        const message = JSON.parse(buffer.toString("utf8", lineStart, lineEnd));
        if (message.type === "reply" && typeof message.result?.offset === "number") {
          connection.onSubscribed(message.id - 1, message.result.offset, message.result.epoch, message.result.recovered);
        } else {
          connection.onUnexpected(`message ${JSON.stringify(message).slice(0, 200)}`);
        }
      }
      lineStart = lineEnd + 1;
    }
  },
};

const naive = {
  name: "ws-naive",
  path: "/",
  sequenceKey: Buffer.from('"seq"'),
  onOpen(connection) {
    connection.channels.forEach((channel, slot) => {
      connection.send(JSON.stringify({ sub: channel.name, id: slot }));
    });
  },
  onText(connection, buffer, start, end) {
    if (buffer[start + 2] === 0x73 /* s of {"seq" */) {
      connection.onPush(buffer, start, end, this.sequenceKey);
      return;
    }
    const message = JSON.parse(buffer.toString("utf8", start, end));
    connection.onSubscribed(message.id, message.seq);
  },
};

const socketIo = {
  name: "socket.io",
  path: "/socket.io/?EIO=4&transport=websocket",
  sequenceKey: Buffer.from("seq"),
  onOpen() {
    // The server speaks first with its Engine.IO open packet.
  },
  onText(connection, buffer, start, end) {
    if (startsWith(buffer, SOCKET_IO_PUB_PREFIX, start, end)) {
      connection.onPush(buffer, start, end, this.sequenceKey);
      return;
    }
    const text = buffer.toString("utf8", start, end);
    if (text === "2") {
      connection.send("3");
    } else if (text.startsWith("0{")) {
      connection.send("40");
    } else if (text.startsWith("40")) {
      connection.channels.forEach((channel, slot) => {
        connection.send(`42${JSON.stringify(["sub", channel.name, slot])}`);
      });
    } else if (text.startsWith('42["subscribed"')) {
      const [, slot, seq] = JSON.parse(text.slice(2));
      connection.onSubscribed(slot, seq);
    } else {
      connection.onUnexpected(`packet ${text.slice(0, 200)}`);
    }
  },
};

/** Builds the query that subscribes an SSE stream to the connection's channels. */
function channelQuery(connection) {
  return connection.channels.map((channel) => `channel=${encodeURIComponent(channel.name)}`).join("&");
}

/** Herald's SSE: a `subscribed` event with every channel's offset, then one `data:` line per publication. */
const heraldSse = {
  name: "herald-sse",
  stream: "sse",
  path: (connection) => `/sse?${channelQuery(connection)}`,
  sequenceKey: Buffer.from('"offset"'),
  onOpen() {
    // The request line subscribed the stream.
  },
  onText(connection, buffer, start, end) {
    // Publications start {"channel": and the subscribed event {"channels":.
    if (buffer[start + 9] === 0x22 /* closing quote of "channel" */) {
      connection.onPush(buffer, start, end, this.sequenceKey);
      return;
    }
    const message = JSON.parse(buffer.toString("utf8", start, end));
    for (const entry of message.channels ?? []) {
      const slot = connection.channels.findIndex((channel) => channel.name === entry.channel);
      connection.onSubscribed(slot, entry.offset);
    }
  },
};

/** The better-sse peer: a `subscribed` event {"ack", "seq"}, then {"seq", "data"} per publication. */
const betterSse = {
  name: "better-sse",
  stream: "sse",
  path: (connection) => `/sse?${channelQuery(connection)}`,
  sequenceKey: Buffer.from('"seq"'),
  onOpen() {
    // The request line subscribed the stream.
  },
  onText(connection, buffer, start, end) {
    if (buffer[start + 2] === 0x73 /* s of {"seq" */) {
      connection.onPush(buffer, start, end, this.sequenceKey);
      return;
    }
    const message = JSON.parse(buffer.toString("utf8", start, end));
    connection.onSubscribed(message.ack, message.seq);
  },
};

const CURSOR_KEY = Buffer.from('"cursor":"');
const EVENT_START = Buffer.from('{"channel"');

/**
 * Herald's long-polling: each client keeps one GET /poll outstanding on a
 * keep-alive connection and sends the next one, with the returned cursor,
 * as soon as a response arrives. The first poll, without a cursor, starts at the
 * channel's top, so its first event sets the baseline for the checks.
 */
const heraldPoll = {
  name: "herald-poll",
  stream: "poll",
  path: "/poll",
  sequenceKey: Buffer.from('"offset"'),
  request(connection, cursor) {
    const query = cursor === undefined ? channelQuery(connection) : `${channelQuery(connection)}&cursor=${cursor}`;
    connection.raw.write(`GET /poll?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  },
  onOpen(connection) {
    connection.channels.forEach((_, slot) => connection.onSubscribed(slot, -1));
    this.request(connection, undefined);
  },
  onText(connection, buffer, start, end) {
    let eventStart = buffer.indexOf(EVENT_START, start);
    while (eventStart !== -1 && eventStart < end) {
      let next = buffer.indexOf(EVENT_START, eventStart + 1);
      if (next === -1 || next > end) next = end;
      connection.onPush(buffer, eventStart, next, this.sequenceKey);
      eventStart = next === end ? -1 : next;
    }
    const cursorAt = buffer.indexOf(CURSOR_KEY, start);
    if (cursorAt === -1 || cursorAt > end) {
      connection.onUnexpected("poll response without a cursor");
      return;
    }
    const valueStart = cursorAt + CURSOR_KEY.length;
    const cursor = buffer.toString("latin1", valueStart, buffer.indexOf(0x22, valueStart));
    this.request(connection, encodeURIComponent(cursor));
  },
};

export const PROTOCOLS = {
  "herald-poll": heraldPoll,
  herald,
  "ws-naive": naive,
  "socket.io": socketIo,
  "herald-sse": heraldSse,
  "better-sse": betterSse,
};
