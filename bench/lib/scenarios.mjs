// The scenarios. Each starts every server under test at once, opens the
// same connections to each, and then measures them in turn, round after
// round with the order rotated, so all servers see the same minutes of a
// noisy machine. Idle servers cost next to nothing while another is
// measured.
import { Fleet, Publisher } from "./fleet.mjs";
import { cpuSeconds, rssBytes, processTree, treeCpuSeconds, treeRssBytes } from "./proc-stats.mjs";
import { startServer } from "./processes.mjs";

const WARMUP_SECONDS = 1;
const IDLE_PLAN = { kind: "fanout", channel: "idle" };

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `target` deliveries arrived, or none arrived for `quietMs`. */
async function settle(fleet, target, quietMs = 2_000, limitMs = 30_000) {
  const start = Date.now();
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const stats = await fleet.stats();
    if (stats.deliveries >= target) return stats;
    if (stats.deliveries !== last) {
      last = stats.deliveries;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > quietMs || Date.now() - start > limitMs) {
      return stats;
    }
    await sleep(20);
  }
}

/** CPU seconds of each node of a server (one, unless it is several nodes), each with its worker processes. */
function nodeCpu(server) {
  return (server.pids ?? [server.pid]).map(treeCpuSeconds);
}

/** One server under test with its own connections and publisher. */
class Session {
  /** Deliveries expected so far: each publish times its channel's subscribers. */
  expected = 0;

  constructor(spec, server, fleet, channels) {
    this.spec = spec;
    this.server = server;
    this.fleet = fleet;
    this.channels = channels;
    this.publisher = new Publisher({ port: server.port, path: spec.publishPath });
  }

  /** Channel of publish number i, round-robin over `channels`. */
  pick = (i) => {
    const target = this.channels[i % this.channels.length];
    this.expected += target.subscribers;
    return target;
  };

  async warmUp(rate) {
    await this.publisher.run(rate, WARMUP_SECONDS, this.pick);
    await settle(this.fleet, this.expected);
  }

  /**
   * Publishes at `rate` for `seconds` and measures throughput, latency,
   * failures and the server's CPU per delivery.
   */
  async measure(rate, seconds) {
    const { fleet, publisher, server } = this;
    await fleet.resetLatency();
    const before = await fleet.stats();
    const expectedBefore = this.expected;
    const publishedBefore = publisher.published;
    const skippedBefore = publisher.skipped;
    const nodeCpuBefore = nodeCpu(server);
    const redisCpuBefore = server.redisPid ? cpuSeconds(server.redisPid) : 0;
    const started = performance.now();

    await publisher.run(rate, seconds, this.pick);
    const publishedFor = (performance.now() - started) / 1000;
    const after = await settle(fleet, before.deliveries + (this.expected - expectedBefore));
    const busyFor = (performance.now() - started) / 1000;
    const nodeCpuSpent = nodeCpu(server).map((cpu, i) => cpu - nodeCpuBefore[i]);
    const serverCpu = nodeCpuSpent.reduce((sum, cpu) => sum + cpu, 0);
    const redisCpu = server.redisPid ? cpuSeconds(server.redisPid) - redisCpuBefore : Number.NaN;
    const verified = await fleet.verify(publisher.tops);

    const deliveries = after.deliveries - before.deliveries;
    const expectedDeliveries = this.expected - expectedBefore;
    const skippedPublishes = publisher.skipped - skippedBefore;
    const millions = deliveries / 1e6;
    const result = {
      server: this.spec.name,
      rate,
      publishesPerSecond: (publisher.published - publishedBefore) / publishedFor,
      expectedDeliveries,
      deliveries,
      deliveriesPerSecond: deliveries / busyFor,
      drainSeconds: busyFor - publishedFor,
      // Kept up: every publish was sent on time, and deliveries finished within a second of the last.
      sustained: skippedPublishes === 0 && deliveries === expectedDeliveries && busyFor - publishedFor < 1,
      serverCpuPerMillion: serverCpu / millions,
      // Subscribers are split evenly over the nodes, so each delivered an equal share.
      nodeCpuPerMillion: nodeCpuSpent.map((cpu) => cpu / (millions / nodeCpuSpent.length)),
      redisCpuPerMillion: redisCpu / millions,
      clientCpuPerMillion: (after.cpuSeconds - before.cpuSeconds) / millions,
      p50: after.latency.quantileMs(0.5),
      p99: after.latency.quantileMs(0.99),
      p999: after.latency.quantileMs(0.999),
      missing: after.missing - before.missing + verified.missingAtEnd,
      outOfOrder: after.outOfOrder - before.outOfOrder,
      unexpected: after.unexpected - before.unexpected,
      closed: after.closed - before.closed,
      skippedPublishes,
      rssBytes: rssBytes(server.pid),
    };
    result.failures = result.missing + result.outOfOrder + result.unexpected + result.closed;
    return result;
  }

  async close() {
    this.publisher.close();
    await this.fleet.close();
    await this.server.stop();
  }
}

/** Starts every server, opens `count` connections of `plan` to each, and runs `body(sessions)`. */
async function withSessions(specs, { count, plan, subscriptionsPerConnection, channels }, body) {
  const sessions = [];
  try {
    for (const spec of specs) {
      const server = spec.start ? await spec.start() : await startServer(spec);
      const fleet = new Fleet();
      sessions.push(new Session(spec, server, fleet, channels));
      // A server of several nodes gets an equal share of the connections on each.
      const ports = server.ports ?? [server.port];
      for (const [i, port] of ports.entries()) {
        const from = Math.round((i * count) / ports.length);
        const to = Math.round(((i + 1) * count) / ports.length);
        await fleet.open({ protocolName: spec.protocol, port, count: to - from, plan, subscriptionsPerConnection, firstId: from });
      }
    }
    return await body(sessions);
  } finally {
    for (const session of sessions) await session.close();
  }
}

/** Measures every session `rounds` times, rotating the order each round. */
async function alternate(sessions, rounds, rate, seconds, onResult) {
  for (const session of sessions) await session.warmUp(rate);
  const results = [];
  for (let round = 0; round < rounds; round++) {
    const order = sessions.map((_, i) => sessions[(i + round) % sessions.length]);
    for (const session of order) {
      const result = await session.measure(rate, seconds);
      onResult?.(round, result);
      results.push(result);
    }
  }
  return results;
}

/** Fan-out: one channel, `subscribers` connections, `rate` publishes per second. */
export function fanout(specs, { subscribers, rate, seconds }, rounds, onResult) {
  const plan = { kind: "fanout", channel: "fan" };
  const channels = [{ channel: "fan", index: 0, subscribers }];
  return withSessions(specs, { count: subscribers, plan, subscriptionsPerConnection: 1, channels }, (sessions) =>
    alternate(sessions, rounds, rate, seconds, onResult),
  );
}

/**
 * Fan-out with the rate raised step by step on the same connections,
 * each step measured for every server in turn. Returns every step's
 * results.
 */
export function fanoutSteps(specs, { subscribers, rates, seconds }, onResult) {
  const plan = { kind: "fanout", channel: "fan" };
  const channels = [{ channel: "fan", index: 0, subscribers }];
  return withSessions(specs, { count: subscribers, plan, subscriptionsPerConnection: 1, channels }, async (sessions) => {
    const results = [];
    for (const rate of rates) {
      results.push(...(await alternate(sessions, 1, rate, seconds, onResult)));
    }
    return results;
  });
}

/**
 * Many channels: every connection on its own channel plus one of
 * `shared` channels; publishes go round-robin over all channels.
 */
export function manyChannels(specs, { connections, shared, rate, seconds }, rounds, onResult) {
  const plan = { kind: "many", shared };
  const channels = [];
  for (let i = 0; i < shared; i++) {
    channels.push({ channel: `shared-${i}`, index: i, subscribers: Math.ceil((connections - i) / shared) });
  }
  for (let id = 0; id < connections; id++) {
    channels.push({ channel: `own-${id}`, index: shared + id, subscribers: 1 });
  }
  // Interleave, so shared channels get their share of publishes throughout the run.
  channels.sort((a, b) => ((a.index * 7919) % channels.length) - ((b.index * 7919) % channels.length));
  return withSessions(specs, { count: connections, plan, subscriptionsPerConnection: 2, channels }, (sessions) =>
    alternate(sessions, rounds, rate, seconds, onResult),
  );
}

/**
 * Idle memory: each server's RSS with `small` connections (one
 * subscription each), then with `large`; the growth divided by the
 * connections added is the cost of one connection. RSS is summed over
 * the server's processes, so `--workers` counts every worker.
 */
export function idleMemory(specs, { small, large }) {
  return withSessions(specs, { count: small, plan: IDLE_PLAN, subscriptionsPerConnection: 1, channels: [] }, async (sessions) => {
    await sleep(2_000);
    const rssSmall = sessions.map((session) => treeRssBytes(session.server.pid));
    for (const session of sessions) {
      await session.fleet.open({
        protocolName: session.spec.protocol,
        port: session.server.port,
        count: large - small,
        plan: IDLE_PLAN,
        subscriptionsPerConnection: 1,
        firstId: small,
      });
    }
    await sleep(2_000);
    return sessions.map((session, i) => {
      const rssLarge = treeRssBytes(session.server.pid);
      return {
        server: session.spec.name,
        processes: processTree(session.server.pid).length,
        rssSmall: rssSmall[i],
        rssLarge,
        bytesPerConnection: (rssLarge - rssSmall[i]) / (large - small),
      };
    });
  });
}
