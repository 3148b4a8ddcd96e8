// One trial of each scenario against one server. Every trial starts a
// fresh server process and fresh load-client workers.
import { Fleet, Publisher } from "./fleet.mjs";
import { cpuSeconds, rssBytes } from "./proc-stats.mjs";
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

/**
 * Publishes at `rate` for `seconds` to `channels` (an array of
 * {channel, index, subscribers}, used round-robin) and measures
 * throughput, latency, failures and the server's CPU per delivery.
 */
async function measureDelivery({ server, fleet, spec, channels, rate, seconds }) {
  const publisher = new Publisher({ port: server.port, path: spec.publishPath });
  let expected = 0;
  const pick = (i) => {
    const target = channels[i % channels.length];
    expected += target.subscribers;
    return target;
  };
  try {
    await publisher.run(rate, WARMUP_SECONDS, pick);
    await settle(fleet, expected);
    await fleet.resetLatency();

    const before = await fleet.stats();
    const expectedBefore = expected;
    const publishedBefore = publisher.published;
    const skippedBefore = publisher.skipped;
    const serverCpuBefore = cpuSeconds(server.pid);
    const started = performance.now();
    await publisher.run(rate, seconds, pick);
    const publishedFor = (performance.now() - started) / 1000;
    const after = await settle(fleet, before.deliveries + (expected - expectedBefore));
    const busyFor = (performance.now() - started) / 1000;
    const serverCpu = cpuSeconds(server.pid) - serverCpuBefore;
    const verified = await fleet.verify(publisher.tops);

    const deliveries = after.deliveries - before.deliveries;
    const expectedDeliveries = expected - expectedBefore;
    const millions = deliveries / 1e6;
    const result = {
      server: spec.name,
      rate,
      publishesPerSecond: (publisher.published - publishedBefore) / publishedFor,
      expectedDeliveries,
      deliveries,
      deliveriesPerSecond: deliveries / busyFor,
      drainSeconds: busyFor - publishedFor,
      // Kept up: every publish was sent on time, and deliveries finished within a second of the last.
      sustained: publisher.skipped === skippedBefore && deliveries === expectedDeliveries && busyFor - publishedFor < 1,
      serverCpuPerMillion: serverCpu / millions,
      clientCpuPerMillion: (after.cpuSeconds - before.cpuSeconds) / millions,
      p50: after.latency.quantileMs(0.5),
      p99: after.latency.quantileMs(0.99),
      p999: after.latency.quantileMs(0.999),
      missing: after.missing - before.missing + verified.missingAtEnd,
      outOfOrder: after.outOfOrder - before.outOfOrder,
      unexpected: after.unexpected - before.unexpected,
      closed: after.closed - before.closed,
      skippedPublishes: publisher.skipped - skippedBefore,
      rssBytes: rssBytes(server.pid),
    };
    result.failures = result.missing + result.outOfOrder + result.unexpected + result.closed;
    return result;
  } finally {
    publisher.close();
  }
}

/** Starts `spec`, opens the connections of `plan`, runs `measure`, and stops everything. */
async function withConnections(spec, { count, plan, subscriptionsPerConnection }, measure) {
  const server = await startServer(spec);
  const fleet = new Fleet();
  try {
    await fleet.open({ protocolName: spec.protocol, port: server.port, count, plan, subscriptionsPerConnection });
    return await measure(server, fleet);
  } finally {
    await fleet.close();
    await server.stop();
  }
}

/** Fan-out: one channel, `subscribers` connections, `rate` publishes per second. */
export function fanoutTrial(spec, { subscribers, rate, seconds }) {
  const plan = { kind: "fanout", channel: "fan" };
  return withConnections(spec, { count: subscribers, plan, subscriptionsPerConnection: 1 }, (server, fleet) => {
    const channels = [{ channel: "fan", index: 0, subscribers }];
    return measureDelivery({ server, fleet, spec, channels, rate, seconds });
  });
}

/**
 * Many channels: every connection on its own channel plus one of
 * `shared` channels; publishes go round-robin over all channels.
 */
export function manyChannelsTrial(spec, { connections, shared, rate, seconds }) {
  const plan = { kind: "many", shared };
  return withConnections(spec, { count: connections, plan, subscriptionsPerConnection: 2 }, (server, fleet) => {
    const channels = [];
    for (let i = 0; i < shared; i++) {
      channels.push({ channel: `shared-${i}`, index: i, subscribers: Math.ceil((connections - i) / shared) });
    }
    for (let id = 0; id < connections; id++) {
      channels.push({ channel: `own-${id}`, index: shared + id, subscribers: 1 });
    }
    // Interleave, so shared channels get their share of publishes throughout the run.
    channels.sort((a, b) => ((a.index * 7919) % channels.length) - ((b.index * 7919) % channels.length));
    return measureDelivery({ server, fleet, spec, channels, rate, seconds });
  });
}

/** Idle memory: RSS growth per connection (one subscription each) between two sizes, each on a fresh server. */
export async function idleMemoryTrial(spec, { small, large }) {
  const rssAt = (count) =>
    withConnections(spec, { count, plan: IDLE_PLAN, subscriptionsPerConnection: 1 }, async (server) => {
      await sleep(2_000);
      return rssBytes(server.pid);
    });
  const rssSmall = await rssAt(small);
  const rssLarge = await rssAt(large);
  return { server: spec.name, rssSmall, rssLarge, bytesPerConnection: (rssLarge - rssSmall) / (large - small) };
}
