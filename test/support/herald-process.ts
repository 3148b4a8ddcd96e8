import { fileURLToPath } from "node:url";
import { freePort, waitUntil } from "./ports.js";
import { startProcess, type Managed } from "./processes.js";

const HERALD_BIN = fileURLToPath(new URL("../../bin/herald.js", import.meta.url));

export interface HeraldProcessOptions {
  /** The node id; random when absent. */
  nodeId?: string;
  /** The port; a free one when absent. A replacement node can take the port of one that exited. */
  port?: number;
  /** Extra `herald serve` arguments. */
  args?: string[];
  /** HERALD_* settings; those of the test's own environment are not passed on. */
  env?: Record<string, string>;
}

export interface HeraldProcess {
  readonly nodeId: string | undefined;
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  readonly process: Managed;
  /** Resolves when the process exits, with its exit code and the signal that ended it, if any. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal without waiting. */
  signal(signal: NodeJS.Signals): void;
  /** Ends the process with the signal (SIGTERM drains, SIGKILL does not) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `herald serve` from the build (npm test builds first) as a child
 * process on a free loopback port, and waits until /healthz responds.
 */
export async function startHeraldProcess(options: HeraldProcessOptions = {}): Promise<HeraldProcess> {
  const port = options.port ?? (await freePort());
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("HERALD_")));
  const args = [HERALD_BIN, "serve", "--port", String(port), "--host", "127.0.0.1"];
  if (options.nodeId !== undefined) {
    args.push("--node-id", options.nodeId);
  }
  const managed = startProcess(process.execPath, [...args, ...(options.args ?? [])], {
    env: { ...inherited, HERALD_LOG_LEVEL: process.env.HERALD_TEST_LOG ?? "info", ...options.env },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    managed.child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const http = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (managed.child.exitCode !== null) {
        throw new Error(`herald serve exited with ${managed.child.exitCode}:\n${managed.output()}`);
      }
      return fetch(`${http}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    15_000,
    `herald serve on port ${port} to answer /healthz`,
  );
  return {
    nodeId: options.nodeId,
    port,
    http,
    ws: `ws://127.0.0.1:${port}/ws`,
    process: managed,
    exited,
    signal: (signal) => managed.child.kill(signal),
    stop: (signal) => managed.stop(signal),
  };
}
