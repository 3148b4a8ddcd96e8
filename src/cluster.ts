import cluster, { type Worker } from "node:cluster";
import type { Logger } from "./log.js";

/** Delay before a worker that died after it started listening is replaced, in ms. */
const RESTART_DELAY_MS = 1_000;

/**
 * Runs `count` processes of `herald serve` that share the port through
 * node:cluster (the primary accepts connections and hands them out round
 * robin). A worker that dies after it started listening is replaced. A
 * worker that dies before it listened stops them all, because its
 * siblings would fail the same way. The first SIGTERM or SIGINT is passed to every worker
 * as SIGTERM, so each drains; a second one ends them at once. Resolves
 * with the exit code: 0 when every worker drained and exited cleanly,
 * else the code of the first worker that did not.
 */
export function runWorkers(count: number, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    const listening = new WeakSet<Worker>();
    let stopping = false;
    let exitCode = 0;

    const stopAll = () => {
      for (const worker of Object.values(cluster.workers ?? {})) {
        worker?.process.kill("SIGTERM");
      }
    };

    cluster.on("listening", (worker) => {
      listening.add(worker);
    });

    cluster.on("exit", (worker, code, signal) => {
      if (!stopping && listening.has(worker)) {
        log.error({ worker: worker.id, code, signal }, "worker exited; starting a replacement");
        setTimeout(() => cluster.fork(), RESTART_DELAY_MS);
        return;
      }
      if (code !== 0 && exitCode === 0) {
        // A worker's own exit code says why it stopped, such as 2 for invalid settings.
        exitCode = code || 1;
      }
      if (!stopping) {
        log.error({ worker: worker.id, code, signal }, "worker failed to start; stopping every worker");
        stopping = true;
        stopAll();
      }
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        resolve(exitCode);
      }
    });

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      stopping = true;
      const message = signals > 1 ? "second signal: ending workers at once" : "signal received: draining workers";
      log.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, message);
      stopAll();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);

    log.info({ workers: count }, "starting workers");
    for (let i = 0; i < count; i++) {
      cluster.fork();
    }
  });
}
