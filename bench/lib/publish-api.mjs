// Publish API throughput: autocannon POSTs publishes as fast as the server
// answers, with nobody subscribed, so the figure is the cost of accepting
// and storing a publish. Herald is measured on /api/publish and on
// /api/publish_batch, on the memory broker and on Redis; the peers on
// their /publish, for scale.
import autocannon from "autocannon";
import { cpuSeconds, treeCpuSeconds } from "./proc-stats.mjs";
import { startServer } from "./processes.mjs";

const BATCH_ITEMS = 100;

function run(options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

/** Returns the request bodies to send to a server: single publishes, and batches where the server has them. */
function targets(spec) {
  const single = JSON.stringify({ channel: "api", data: { n: 1, pad: "-".repeat(64) } });
  const list = [{ label: spec.publishPath, path: spec.publishPath, body: single, publishesPerRequest: 1 }];
  if (spec.batchPath) {
    const items = Array.from({ length: BATCH_ITEMS }, (_, i) => ({ channel: `api-${i % 10}`, data: { n: i, pad: "-".repeat(64) } }));
    list.push({ label: `${spec.batchPath} (${BATCH_ITEMS} items)`, path: spec.batchPath, body: JSON.stringify({ items }), publishesPerRequest: BATCH_ITEMS });
  }
  return list;
}

/** Measures each of `specs` for `seconds` per target with 10 connections. */
export async function publishApi(specs, { seconds }) {
  const rows = [];
  for (const spec of specs) {
    const server = spec.start ? await spec.start() : await startServer(spec);
    try {
      for (const target of targets(spec)) {
        const options = {
          url: `http://127.0.0.1:${server.port}${target.path}`,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: target.body,
          connections: 10,
          duration: seconds,
        };
        await run({ ...options, duration: 1 });
        const cpuBefore = treeCpuSeconds(server.pid);
        const redisBefore = server.redisPid ? cpuSeconds(server.redisPid) : Number.NaN;
        const result = await run(options);
        const cpu = treeCpuSeconds(server.pid) - cpuBefore;
        const redisCpu = server.redisPid ? cpuSeconds(server.redisPid) - redisBefore : Number.NaN;
        const publishes = result.requests.total * target.publishesPerRequest;
        rows.push({
          server: spec.name,
          endpoint: target.label,
          requestsPerSecond: result.requests.average,
          publishesPerSecond: result.requests.average * target.publishesPerRequest,
          p50: result.latency.p50,
          p99: result.latency.p99,
          errors: result.errors + result.non2xx,
          serverCpuPerMillion: cpu / (publishes / 1e6),
          redisCpuPerMillion: redisCpu / (publishes / 1e6),
        });
      }
    } finally {
      await server.stop();
    }
  }
  return rows;
}
