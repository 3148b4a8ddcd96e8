import { fileURLToPath } from "node:url";
import { freePort, waitUntil } from "./ports.js";
import { startProcess, type Managed } from "./processes.js";

const BIN = fileURLToPath(new URL("../../bin/herald.js", import.meta.url));

export interface HeraldProcess {
  readonly nodeId: string;
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  readonly process: Managed;
  /** Ends the process with the signal (SIGTERM drains, SIGKILL does not) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `herald serve` from the built dist/ as a child process on a free
 * loopback port, and waits until /healthz responds.
 */
export async function startHeraldProcess(nodeId: string, args: string[], env: Record<string, string> = {}): Promise<HeraldProcess> {
  const port = await freePort();
  const child = startProcess(
    process.execPath,
    [BIN, "serve", "--port", String(port), "--host", "127.0.0.1", "--node-id", nodeId, ...args],
    { env: { PATH: process.env.PATH ?? "", HERALD_LOG_LEVEL: process.env.HERALD_TEST_LOG ?? "warn", ...env } },
  );
  const http = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.child.exitCode !== null) {
        throw new Error(`herald ${nodeId} exited with ${child.child.exitCode}: ${child.output()}`);
      }
      return fetch(`${http}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    15_000,
    `herald ${nodeId} on port ${port}`,
  );
  return { nodeId, port, http, ws: `ws://127.0.0.1:${port}/ws`, process: child, stop: (signal) => child.stop(signal) };
}
