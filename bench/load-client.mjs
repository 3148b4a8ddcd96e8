// One load-client worker process, started by bench/run.mjs over IPC. It
// opens WebSocket connections over loopback, spread over several source
// addresses so that each address stays under the ephemeral-port limit,
// checks every delivery's per-channel sequence, and records
// publish-to-delivery latency from the timestamp in each payload.
//
// Commands from the coordinator: open, stats, reset-latency, verify, exit.
import { performance } from "node:perf_hooks";
import { Histogram } from "./lib/histogram.mjs";
import { cpuSeconds, monotonicMicros } from "./lib/proc-stats.mjs";
import { PROTOCOLS, numberAfter } from "./lib/protocols.mjs";
import { openRawStream } from "./lib/raw-client.mjs";

const CHANNEL_KEY = Buffer.from("bx");
const TIME_KEY = Buffer.from("bt");
const OPEN_CONCURRENCY = 200;
/** The acknowledged position of a subscription whose first event sets the baseline (long-polling). */
const UNKNOWN_POSITION = -1;

/** Microseconds on the monotonic clock, via performance.now() which is cheaper than hrtime.bigint(). */
const clockBase = monotonicMicros() - performance.now() * 1000;
const nowMicros = () => clockBase + performance.now() * 1000;

const totals = {
  deliveries: 0,
  missing: 0,
  outOfOrder: 0,
  unexpected: 0,
  closed: 0,
  subscribed: 0,
};
const latency = new Histogram();
const connections = [];
let protocol;

class Connection {
  /** Last sequence seen per channel index. */
  last = new Map();
  raw = undefined;

  constructor(channels) {
    this.channels = channels;
  }

  attach(raw) {
    this.raw = raw;
  }

  send(text) {
    this.raw.send(text);
  }

  onText(buffer, start, end) {
    protocol.onText(this, buffer, start, end);
  }

  onPush(buffer, start, end, sequenceKey) {
    const sequence = numberAfter(buffer, sequenceKey, start, end);
    const channel = numberAfter(buffer, CHANNEL_KEY, start, end);
    const sentAt = numberAfter(buffer, TIME_KEY, start, end);
    totals.deliveries++;
    latency.record(nowMicros() - sentAt);

    const last = this.last.get(channel);
    if (last === undefined) {
      totals.unexpected++;
    } else if (last === UNKNOWN_POSITION || sequence === last + 1) {
      this.last.set(channel, sequence);
    } else if (sequence > last + 1) {
      totals.missing += sequence - last - 1;
      this.last.set(channel, sequence);
    } else {
      totals.outOfOrder++;
    }
  }

  onSubscribed(slot, sequence) {
    const channel = this.channels[slot];
    if (channel === undefined || this.last.has(channel.index)) {
      totals.unexpected++;
      return;
    }
    this.last.set(channel.index, sequence);
    totals.subscribed++;
  }

  onUnexpected(what) {
    if (totals.unexpected < 5) process.stderr.write(`load client: unexpected ${what}\n`);
    totals.unexpected++;
  }

  onClose() {
    totals.closed++;
  }
}

/** Channels of connection number `id`: one fan-out channel, or its own channel plus one shared channel. */
function channelsOf(id, plan) {
  if (plan.kind === "fanout") {
    return [{ name: plan.channel, index: 0 }];
  }
  const shared = id % plan.shared;
  return [
    { name: `own-${id}`, index: plan.shared + id },
    { name: `shared-${shared}`, index: shared },
  ];
}

async function open({ protocolName, host, port, sourceAddresses, firstId, count, plan }) {
  protocol = PROTOCOLS[protocolName];
  let next = firstId;
  const last = firstId + count;
  const failures = [];

  async function openOne(id) {
    const connection = new Connection(channelsOf(id, plan));
    await openRawStream({
      host,
      port,
      stream: protocol.stream ?? "websocket",
      path: typeof protocol.path === "function" ? protocol.path(connection) : protocol.path,
      localAddress: sourceAddresses[id % sourceAddresses.length],
      handler: connection,
    });
    connections.push(connection);
    protocol.onOpen(connection);
  }

  async function lane() {
    while (next < last) {
      const id = next++;
      try {
        await openOne(id);
      } catch (error) {
        failures.push(String(error.message ?? error));
      }
    }
  }
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, lane));
  return { opened: connections.length, failures: failures.slice(0, 5), failed: failures.length };
}

/** Counts channels whose last delivered sequence is behind the publisher's final one. */
function verify(tops) {
  let behind = 0;
  let missingAtEnd = 0;
  for (const connection of connections) {
    for (const channel of connection.channels) {
      const top = tops[channel.index];
      const last = connection.last.get(channel.index);
      if (top !== undefined && last !== undefined && last < top) {
        behind++;
        missingAtEnd += top - last;
      }
    }
  }
  return { behind, missingAtEnd };
}

process.on("message", async (message) => {
  switch (message.type) {
    case "open":
      process.send({ type: "opened", ...(await open(message)) });
      break;
    case "stats":
      process.send({ type: "stats", ...totals, cpuSeconds: cpuSeconds(process.pid), latency: latency.toSparse() });
      break;
    case "reset-latency":
      latency.reset();
      process.send({ type: "reset" });
      break;
    case "verify":
      process.send({ type: "verified", ...verify(message.tops) });
      break;
    case "exit":
      for (const connection of connections) connection.raw.close();
      process.exit(0);
  }
});

process.on("disconnect", () => process.exit(0));
