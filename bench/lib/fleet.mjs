// The load side of one run: load-client workers and the HTTP publisher.
import { Agent, request } from "node:http";
import { Histogram } from "./histogram.mjs";
import { monotonicMicros } from "./proc-stats.mjs";
import { Worker } from "./processes.mjs";

/** Connections per worker process, under the open-files limit of about 20,000. */
const CONNECTIONS_PER_WORKER = 8_000;
/** Source addresses 127.0.0.2, 127.0.0.3, … each give a fresh range of ephemeral ports. */
const SOURCE_ADDRESSES = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 2}`);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Fleet {
  workers = [];
  expectedSubscriptions = 0;

  /**
   * Opens `count` more connections, numbered from `firstId`, on new
   * workers, and waits until every subscription of the fleet is
   * acknowledged.
   */
  async open({ protocolName, port, count, plan, subscriptionsPerConnection, firstId = 0 }) {
    const workerCount = Math.max(1, Math.ceil(count / CONNECTIONS_PER_WORKER));
    const per = Math.ceil(count / workerCount);
    const added = Array.from({ length: workerCount }, () => new Worker());
    this.workers.push(...added);
    this.expectedSubscriptions += count * subscriptionsPerConnection;

    const results = await Promise.all(
      added.map((worker, i) =>
        worker.request({
          type: "open",
          protocolName,
          host: "127.0.0.1",
          port,
          sourceAddresses: SOURCE_ADDRESSES,
          firstId: firstId + i * per,
          count: Math.max(0, Math.min(per, count - i * per)),
          plan,
        }),
      ),
    );
    const failed = results.reduce((sum, result) => sum + result.failed, 0);
    if (failed > 0) {
      throw new Error(`${failed} connections failed to open, for example: ${results.flatMap((r) => r.failures)[0]}`);
    }

    const expected = this.expectedSubscriptions;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const stats = await this.stats();
      if (stats.subscribed >= expected) return;
      if (Date.now() > deadline) throw new Error(`only ${stats.subscribed} of ${expected} subscriptions acknowledged`);
      await sleep(100);
    }
  }

  /** Counters summed over workers, with their merged latency histogram. */
  async stats() {
    const replies = await Promise.all(this.workers.map((worker) => worker.request({ type: "stats" })));
    // Every numeric field of a worker's reply is a counter.
    const sum = {};
    const latency = new Histogram();
    for (const reply of replies) {
      for (const [key, value] of Object.entries(reply)) {
        if (typeof value === "number") sum[key] = (sum[key] ?? 0) + value;
      }
      latency.addSparse(reply.latency);
    }
    return { ...sum, latency };
  }

  async resetLatency() {
    await Promise.all(this.workers.map((worker) => worker.request({ type: "reset-latency" })));
  }

  /** Checks that every connection got up to each channel's last published sequence. */
  async verify(tops) {
    const replies = await Promise.all(this.workers.map((worker) => worker.request({ type: "verify", tops })));
    return replies.reduce((sum, reply) => ({ behind: sum.behind + reply.behind, missingAtEnd: sum.missingAtEnd + reply.missingAtEnd }), {
      behind: 0,
      missingAtEnd: 0,
    });
  }

  async close() {
    await Promise.all(this.workers.map((worker) => worker.stop()));
    this.workers = [];
    this.expectedSubscriptions = 0;
  }
}

/**
 * Publishes over HTTP at a target rate with a bounded number of requests
 * in flight, so a saturated server slows the publisher instead of piling
 * up requests. Each payload carries the channel index and the publish
 * time in monotonic microseconds.
 */
export class Publisher {
  /** Last sequence returned per channel index. */
  tops = {};
  published = 0;
  skipped = 0;

  constructor({ port, path, padding = 64, maxInFlight = 8 }) {
    this.port = port;
    this.path = path;
    this.padding = "-".repeat(padding);
    this.maxInFlight = maxInFlight;
    this.inFlight = 0;
    this.agent = new Agent({ keepAlive: true, maxSockets: maxInFlight });
  }

  publishOne(channel, index) {
    this.inFlight++;
    const body = `{"channel":"${channel}","data":{"bx":${index},"bt":${monotonicMicros()},"pad":"${this.padding}"}}`;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: this.port,
          path: this.path,
          method: "POST",
          agent: this.agent,
          headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks = [];
          res.on("data", (chunk) => chunks.push(chunk));
          res.on("end", () => {
            this.inFlight--;
            if (res.statusCode !== 200) {
              reject(new Error(`publish failed with status ${res.statusCode}: ${Buffer.concat(chunks).toString()}`));
              return;
            }
            const reply = JSON.parse(Buffer.concat(chunks).toString());
            const seq = reply.offset ?? reply.seq;
            this.tops[index] = Math.max(this.tops[index] ?? 0, seq);
            this.published++;
            resolve(seq);
          });
        },
      );
      req.on("error", (error) => {
        this.inFlight--;
        reject(error);
      });
      req.end(body);
    });
  }

  /**
   * Publishes at `rate` per second for `seconds`, choosing the channel of
   * publish i with `pick(i)` → {channel, index}. A publish that would
   * exceed the in-flight bound is skipped and counted.
   */
  async run(rate, seconds, pick) {
    // Fresh connections for each run: a keep-alive socket left idle while
    // other servers were measured may be closed by the server just as a
    // request reuses it, which fails that request with ECONNRESET.
    this.agent.destroy();
    this.agent = new Agent({ keepAlive: true, maxSockets: this.maxInFlight });
    const total = Math.round(rate * seconds);
    const start = performance.now();
    const failures = [];
    const requests = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (this.inFlight >= this.maxInFlight) {
        this.skipped++;
        continue;
      }
      const { channel, index } = pick(i);
      requests.push(this.publishOne(channel, index).catch((error) => failures.push(error)));
    }
    await Promise.all(requests);
    if (failures.length > 0) throw failures[0];
  }

  close() {
    this.agent.destroy();
  }
}
