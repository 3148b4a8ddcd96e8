// Starting and talking to the processes of one benchmark run: servers
// pinned to core 0, load-client workers pinned to core 1.
import { spawn, spawnSync } from "node:child_process";
import { connect, createServer } from "node:net";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const SERVER_CORE = "0";
const CLIENT_CORE = "1";

/**
 * Runs this script again pinned to the client core, unless it already is,
 * and exits with that run's code. Call it first thing in an entry script.
 */
export function pinToClientCore() {
  if (process.env.BENCH_COORDINATOR_PINNED === "1") return;
  const pinned = spawnSync("taskset", ["-c", CLIENT_CORE, process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, BENCH_COORDINATOR_PINNED: "1" },
  });
  process.exit(pinned.status ?? 1);
}

/** Compiles Herald into dist/, which bin/herald.js runs. */
export function buildHerald() {
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new Error("the TypeScript build failed");
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitForPort(port, child, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode}`);
    const open = await new Promise((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`server did not listen on ${port} within ${timeoutMs} ms`);
}

/**
 * Starts a server under test on core 0 and waits until it listens.
 * `args(port)` gives the script and its arguments, `nodeArgs` any flags
 * for node itself. `port` reuses a port, as a restarted node does.
 * `stop()` ends it by its pid; `exited` resolves when it has exited.
 */
export async function startServer(spec, port = undefined) {
  port ??= await freePort();
  const child = spawn("taskset", ["-c", SERVER_CORE, process.execPath, ...(spec.nodeArgs ?? []), ...spec.args(port)], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let errors = "";
  child.stderr.on("data", (chunk) => {
    errors = (errors + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    await waitForPort(port, child);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${spec.name}: ${error.message}\n${errors}`);
  }
  return {
    pid: child.pid,
    port,
    exited,
    errors: () => errors,
    stop: () => stopChild(child, exited),
  };
}

/** Sends a child SIGTERM, then SIGKILL if it has not exited within 3 s, and waits for its exit. */
export async function stopChild(child, exited) {
  if (child.exitCode === null) {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  }
}

/** A load-client worker on core 1, driven by request/reply messages over IPC. */
export class Worker {
  constructor() {
    this.child = spawn("taskset", ["-c", CLIENT_CORE, process.execPath, "bench/load-client.mjs"], {
      cwd: ROOT,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.pending = [];
    this.child.on("message", (message) => this.pending.shift()?.(message));
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
  }

  request(message) {
    return new Promise((resolve, reject) => {
      this.pending.push(resolve);
      this.child.send(message, (error) => error && reject(error));
    });
  }

  async stop() {
    if (this.child.exitCode === null) {
      this.child.send({ type: "exit" }, () => undefined);
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}
