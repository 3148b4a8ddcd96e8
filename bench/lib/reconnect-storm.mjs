// Reconnect storm: every client of one node loses its connection at once
// when the node restarts, reconnects and resumes each channel from its
// last offset. Two nodes share a Redis broker, so history survives the
// restart and publishing continues through the other node meanwhile.
import { Fleet, Publisher } from "./fleet.mjs";
import { startServer } from "./processes.mjs";
import { startRedis } from "./redis.mjs";
import { heraldRedisArgs } from "./servers.mjs";

const CHANNEL = { channel: "storm", index: 0 };
const LIMIT_MS = 120_000;
/** Events kept per channel: 100 s at 10 publishes/s, against the default 100. */
const HISTORY_SIZE = 1_000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 50 ms until it returns true; false after LIMIT_MS. */
async function until(check) {
  const deadline = Date.now() + LIMIT_MS;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(50);
  }
  return false;
}

/**
 * Opens `clients` resuming connections to one node and publishes `rate`
 * per second through the other. Then restarts the first (SIGTERM, then a
 * new process on the same port) and measures how long until every client
 * has resumed. Also measures how long until every client has received
 * the offset that was last published when the last client resumed.
 */
export async function reconnectStorm({ clients, rate }) {
  const redis = await startRedis();
  // History of HISTORY_SIZE events keeps every missed event recoverable while
  // clients resume, so the table measures resume, not the history bound.
  const args = (port) => [...heraldRedisArgs(redis.url)(port), "--set", `defaults.historySize=${HISTORY_SIZE}`];
  const spec = { name: "herald on Redis", args };
  const stopping = [redis];
  const fleet = new Fleet();
  let publishing = false;
  try {
    const publishNode = await startServer(spec);
    stopping.unshift(publishNode);
    let node = await startServer(spec);
    stopping.unshift({ stop: () => node.stop() });
    const publisher = new Publisher({ port: publishNode.port, path: "/api/publish" });
    stopping.unshift({ stop: async () => publisher.close() });

    await fleet.open({
      protocolName: "herald",
      port: node.port,
      count: clients,
      plan: { kind: "fanout", channel: CHANNEL.channel, resume: true },
      subscriptionsPerConnection: 1,
    });
    publishing = true;
    const publishLoop = (async () => {
      while (publishing) await publisher.run(rate, 0.5, () => CHANNEL);
    })();
    await sleep(1_000);

    const started = performance.now();
    const since = (at) => (at - started) / 1000;
    process.kill(node.pid, "SIGTERM");
    await node.exited;
    const stoppedAt = performance.now();
    node = await startServer(spec, node.port);
    const listeningAt = performance.now();

    const resumed = await until(async () => {
      const stats = await fleet.stats();
      return stats.disconnects >= clients && stats.down === 0;
    });
    const resumedAt = performance.now();
    const target = { ...publisher.tops };
    const caughtUp = resumed && (await until(async () => (await fleet.verify(target)).behind === 0));
    const caughtUpAt = performance.now();

    await sleep(1_000);
    publishing = false;
    await publishLoop;
    await until(async () => (await fleet.verify(publisher.tops)).behind === 0);
    const stats = await fleet.stats();
    const verified = await fleet.verify(publisher.tops);
    return {
      clients,
      rate,
      published: publisher.published,
      stopSeconds: since(stoppedAt),
      restartSeconds: since(listeningAt),
      resumedSeconds: resumed ? since(resumedAt) : Number.NaN,
      caughtUpSeconds: caughtUp ? since(caughtUpAt) : Number.NaN,
      disconnects: stats.disconnects,
      missed: stats.missing + verified.missingAtEnd,
      duplicated: stats.outOfOrder,
      notRecovered: stats.notRecovered,
      unexpected: stats.unexpected,
      skippedPublishes: publisher.skipped,
    };
  } finally {
    publishing = false;
    await fleet.close();
    for (const part of stopping) await part.stop();
  }
}
