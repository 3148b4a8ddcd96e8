// The servers under test. `args(port)` gives the node arguments that
// start one; `publishPath` is where the publisher POSTs
// {"channel", "data"}; `protocol` picks the load client's adapter.
// A spec with `start()` starts itself, as several nodes do.
import { startServer } from "./processes.mjs";
import { startRedis } from "./redis.mjs";

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

/** Herald's arguments for a node on the Redis broker at `url`, with `workers` processes. */
export function heraldRedisArgs(url, workers = 1) {
  return (port) => [...herald.args(port), "--broker", "redis", "--redis-url", url, "--workers", String(workers)];
}

/**
 * Starts a redis-server of its own and `nodes` Herald nodes on it, each
 * with `workers` processes, as one server under test: subscribers are
 * split over the nodes' ports and publishes go to the first. A Redis of
 * its own keeps servers measured in the same scenario from receiving
 * each other's publications.
 */
async function startOnRedis(name, nodeCount, workers) {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (let i = 0; i < nodeCount; i++) {
      nodes.push(await startServer({ name, args: heraldRedisArgs(redis.url, workers) }));
    }
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
    throw error;
  }
  return {
    port: nodes[0].port,
    pid: nodes[0].pid,
    ports: nodes.map((node) => node.port),
    pids: nodes.map((node) => node.pid),
    redisPid: redis.pid,
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      await redis.stop();
    },
  };
}

/** Herald on the Redis broker with `workers` processes (`--workers`), measured over WebSocket or `herald-sse`. */
export function heraldOnRedis(workers = 1, protocol = "herald") {
  const name = `herald${protocol === "herald-sse" ? " (SSE)" : ""} on Redis, --workers ${workers}`;
  return { name, protocol, publishPath: herald.publishPath, batchPath: herald.batchPath, start: () => startOnRedis(name, 1, workers) };
}

/** Two Herald nodes on the Redis broker. */
export const heraldTwoNodes = {
  name: "herald, 2 nodes on Redis",
  protocol: "herald",
  publishPath: "/api/publish",
  start: () => startOnRedis("herald, 2 nodes on Redis", 2, 1),
};
