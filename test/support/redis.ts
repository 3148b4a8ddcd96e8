import { execFileSync } from "node:child_process";
import { freePort, waitUntil } from "./ports.js";
import { startProcess, tempDir, type Managed } from "./processes.js";
import { Socket } from "node:net";

/** A redis-server from Debian's package on a free loopback port, without persistence. */
export interface RedisInstance {
  readonly port: number;
  readonly url: string;
  /** Runs redis-cli against this server and returns its output. */
  cli(...args: string[]): string;
  stop(): Promise<void>;
  /** Stops and starts again on the same port, with empty data. */
  restart(): Promise<void>;
}

export async function startRedis(extraArgs: string[] = []): Promise<RedisInstance> {
  const port = await freePort();
  const dir = tempDir("herald-redis-");
  let process: Managed;
  const launch = async () => {
    process = startProcess("redis-server", [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
      "--dir", dir.path,
      ...extraArgs,
    ]);
    await waitUntil(() => ping(port), 10_000, `redis-server on port ${port}`);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cli: (...args: string[]) => execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }),
    async stop() {
      await process.stop("SIGKILL");
      dir.cleanup();
    },
    async restart() {
      await process.stop("SIGKILL");
      await launch();
    },
  };
}

/** A Redis Cluster of `masters` redis-server processes, no replicas. */
export async function startRedisCluster(masters = 3): Promise<{ nodes: string[]; stop(): Promise<void> }> {
  const instances: RedisInstance[] = [];
  for (let i = 0; i < masters; i++) {
    instances.push(await startRedis(["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${i}.conf`, "--cluster-node-timeout", "2000"]));
  }
  const nodes = instances.map((instance) => `127.0.0.1:${instance.port}`);
  execFileSync("redis-cli", ["--cluster", "create", ...nodes, "--cluster-replicas", "0", "--cluster-yes"], { encoding: "utf8" });
  await waitUntil(() => instances.every((instance) => instance.cli("cluster", "info").includes("cluster_state:ok")), 20_000, "cluster_state:ok");
  return {
    nodes,
    async stop() {
      await Promise.all(instances.map((instance) => instance.stop()));
    },
  };
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
  });
}
