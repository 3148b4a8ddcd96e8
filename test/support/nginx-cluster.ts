import { renderDeployConfig } from "./deploy.js";
import { startHeraldProcess, type HeraldProcess } from "./herald-process.js";
import { startNginx } from "./nginx.js";
import { freePort } from "./ports.js";
import { startRedis } from "./redis.js";

export interface NginxCluster {
  /** node-1, node-2 and node-3, in that order. */
  readonly nodes: HeraldProcess[];
  /** The proxy's port and base URL. */
  readonly port: number;
  readonly base: string;
  /** Stops nginx, the nodes (SIGKILL) and Redis. */
  stop(): Promise<void>;
}

/**
 * Starts Redis, three `herald serve` processes on it (node-1 to node-3)
 * and nginx in front of them with deploy/nginx/cluster.conf.
 */
export async function startNginxCluster(historySize: number): Promise<NginxCluster> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const step of stops.reverse()) {
      await step();
    }
  };
  try {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const nodes: HeraldProcess[] = [];
    for (const id of ["node-1", "node-2", "node-3"]) {
      const node = await startHeraldProcess({
        nodeId: id,
        args: ["--broker", "redis", "--redis-url", redis.url, "--set", `defaults.historySize=${historySize}`],
      });
      stops.push(() => node.stop("SIGKILL"));
      nodes.push(node);
    }
    const port = await freePort();
    const nginx = await startNginx(renderDeployConfig("deploy/nginx/cluster.conf", port, nodes.map((node) => node.port)), port);
    stops.push(() => nginx.stop());
    return { nodes, port, base: `http://127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
