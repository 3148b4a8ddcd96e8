// Starting and talking to the processes of one benchmark run: servers
// pinned to core 0, load-client workers pinned to core 1.
import { spawn, spawnSync } from "node:child_process";
import { connect, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { processTree } from "./proc-stats.mjs";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const SERVER_CORE = "0";
const CLIENT_CORE = "1";

/**
 * Pins this process, every thread it has and every one it starts, to the
 * client core. Call it first thing in an entry script. It also makes sure
 * that every process the run started ends with it, however it ends.
 */
export function pinToClientCore() {
  const pinned = spawnSync("taskset", ["-a", "-p", "-c", CLIENT_CORE, String(process.pid)], { stdio: "ignore" });
  if (pinned.status !== 0) throw new Error("taskset could not pin the benchmark to core 1; it needs util-linux and two cores");
  endChildrenOnExit();
}

/** Every process a run has started and not yet seen exit. */
const children = new Set();

/** Registers a child process, so that it is ended if the run ends first. */
export function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/**
 * Kills every process the run started that is still running, with its
 * descendants (the workers of `--workers`), by pid. Synchronous, so that
 * it can run in an `exit` handler.
 */
function killChildren() {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    for (const pid of processTree(child.pid).reverse()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // It exited in the meantime.
      }
    }
  }
  children.clear();
}

let endingChildren = false;

/**
 * A run that is interrupted (Ctrl-C, SIGTERM, a closed terminal or pipe)
 * or that fails must not leave servers, load clients or redis-server
 * behind, so every way out of the process kills what it started.
 */
function endChildrenOnExit() {
  if (endingChildren) return;
  endingChildren = true;
  process.on("exit", killChildren);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ]) {
    process.on(signal, () => {
      console.error(`benchmark stopped by ${signal}; ending the processes it started`);
      process.exit(code);
    });
  }
  // Writing to a closed pipe (`npm run bench | head`) fails with EPIPE, so stop instead of carrying on unseen.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", () => process.exit(1));
  }
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
  const child = track(
    spawn("taskset", ["-c", SERVER_CORE, process.execPath, ...(spec.nodeArgs ?? []), ...spec.args(port)], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    }),
  );
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
    this.child = track(
      spawn("taskset", ["-c", CLIENT_CORE, process.execPath, "bench/load-client.mjs"], {
        cwd: ROOT,
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      }),
    );
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
