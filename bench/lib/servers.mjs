// The servers under test. `args(port)` gives the node arguments that
// start one; `publishPath` is where the publisher POSTs
// {"channel", "data"}; `protocol` picks the load client's adapter.

export const herald = {
  name: "herald",
  protocol: "herald",
  publishPath: "/api/publish",
  batchPath: "/api/publish_batch",
  args: (port) => ["bin/herald.js", "serve", "--port", String(port), "--host", "127.0.0.1", "--log-level", "warn"],
};
export const naive = {
  name: "ws (naive loop)",
  protocol: "ws-naive",
  publishPath: "/publish",
  args: (port) => ["bench/servers/ws-naive.mjs", "--port", String(port)],
};
export const socketIo = {
  name: "socket.io",
  protocol: "socket.io",
  publishPath: "/publish",
  args: (port) => ["bench/servers/socketio.mjs", "--port", String(port)],
};
export const socketIoRecovery = {
  name: "socket.io + recovery",
  protocol: "socket.io",
  publishPath: "/publish",
  args: (port) => ["bench/servers/socketio.mjs", "--port", String(port), "--recovery"],
};
export const SERVERS = [herald, naive, socketIo, socketIoRecovery];

/** Herald holding writes 5 ms, to measure what websocket.writeDelayMs costs in latency and saves in CPU. */
export const heraldWriteDelay = {
  name: "herald, writeDelayMs 5",
  protocol: "herald",
  publishPath: "/api/publish",
  args: (port) => [...herald.args(port), "--set", "websocket.writeDelayMs=5"],
};
export const FANOUT_SERVERS = [...SERVERS, heraldWriteDelay];

export const heraldSse = {
  name: "herald (SSE)",
  protocol: "herald-sse",
  publishPath: "/api/publish",
  args: herald.args,
};
export const betterSse = {
  name: "better-sse",
  protocol: "better-sse",
  publishPath: "/publish",
  args: (port) => ["bench/servers/better-sse.mjs", "--port", String(port)],
};
export const SSE_SERVERS = [heraldSse, betterSse];

export const heraldPoll = {
  name: "herald (long-poll)",
  protocol: "herald-poll",
  publishPath: "/api/publish",
  args: herald.args,
};
