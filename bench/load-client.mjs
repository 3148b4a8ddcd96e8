// One load-client worker process, started by bench/run.mjs over IPC. It
// opens WebSocket connections over loopback, spread over several source
// addresses so that each address stays under the ephemeral-port limit,
// checks every delivery's per-channel sequence, and records
// publish-to-delivery latency from the timestamp in each payload.
//
// With `plan.resume`, a connection that closes opens again after a short
// random delay, retrying until the server accepts it, and subscribes with
// `since` each channel's last epoch and sequence (Herald only).
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
/** A closed connection waits up to this long before reconnecting, and as long again plus a random share of it between attempts, in ms. */
const RECONNECT_JITTER_MS = 250;
/**
 * A reconnect attempt without a handshake reply by then is abandoned and
 * retried, as a client with a connect timeout does. Without it, a SYN
 * dropped by a full accept queue is retried by the kernel only after 1,
 * 3, 7, 15… s.
 */
const RECONNECT_TIMEOUT_MS = 10_000;

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
  /** Closes followed by a reconnect (plan.resume). */
  disconnects: 0,
  /** Connections closed and not yet subscribed again with every channel resumed. */
  down: 0,
  /** Resumed subscriptions whose reply reported that the server could not recover the missed events. */
  notRecovered: 0,
};
const latency = new Histogram();
const connections = [];
let protocol;
let exiting = false;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Connection {
  /** Last sequence seen per channel index. */
  last = new Map();
  /** Epoch per channel index, from the subscribe reply, for resuming. */
  epochs = new Map();
  raw = undefined;
  /** Channels still to be resubscribed after a reconnect. */
  resuming = 0;

  constructor(channels, target) {
    this.channels = channels;
    this.target = target;
  }

  /** Returns where channel number `slot` resumes from, or undefined before its first subscription. */
  since(slot) {
    const index = this.channels[slot].index;
    const epoch = this.epochs.get(index);
    return epoch === undefined ? undefined : { epoch, offset: this.last.get(index) };
  }

  async connect() {
    await openRawStream({ ...this.target, handler: this });
    protocol.onOpen(this);
  }

  async reconnect() {
    await sleep(Math.random() * RECONNECT_JITTER_MS);
    for (;;) {
      let timer;
      const timedOut = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("connect timed out")), RECONNECT_TIMEOUT_MS);
      });
      try {
        await Promise.race([this.connect(), timedOut]);
        return;
      } catch {
        // An attempt that timed out is abandoned, so its handshake cannot complete later.
        this.raw.close();
        await sleep(RECONNECT_JITTER_MS * (1 + Math.random()));
      } finally {
        clearTimeout(timer);
      }
    }
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

  onSubscribed(slot, sequence, epoch, recovered) {
    const channel = this.channels[slot];
    if (channel !== undefined && this.resuming > 0 && this.last.has(channel.index)) {
      // A resumed subscription: the events after `since` follow the reply.
      if (recovered !== true || sequence !== this.last.get(channel.index)) totals.notRecovered++;
      this.resuming--;
      if (this.resuming === 0) totals.down--;
      return;
    }
    if (channel === undefined || this.last.has(channel.index)) {
      totals.unexpected++;
      return;
    }
    this.last.set(channel.index, sequence);
    if (epoch !== undefined) this.epochs.set(channel.index, epoch);
    totals.subscribed++;
  }

  onUnexpected(what) {
    if (totals.unexpected < 5) process.stderr.write(`load client: unexpected ${what}\n`);
    totals.unexpected++;
  }

  onClose() {
    if (exiting) return;
    if (!this.target.resume) {
      totals.closed++;
      return;
    }
    totals.disconnects++;
    if (this.resuming === 0) totals.down++;
    this.resuming = this.channels.length;
    void this.reconnect();
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
    const channels = channelsOf(id, plan);
    const connection = new Connection(channels, {
      host,
      port,
      stream: protocol.stream ?? "websocket",
      path: typeof protocol.path === "function" ? protocol.path({ channels }) : protocol.path,
      localAddress: sourceAddresses[id % sourceAddresses.length],
      resume: plan.resume === true,
    });
    await connection.connect();
    connections.push(connection);
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
      exiting = true;
      for (const connection of connections) connection.raw.close();
      process.exit(0);
  }
});

process.on("disconnect", () => process.exit(0));
