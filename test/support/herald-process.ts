import { fileURLToPath } from "node:url";
import { freePort, waitUntil } from "./ports.js";
import { startProcess, type Managed } from "./processes.js";

const HERALD_BIN = fileURLToPath(new URL("../../bin/herald.js", import.meta.url));

export interface HeraldProcess {
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  readonly process: Managed;
  /** Resolves when the process exits, with its exit code and the signal that ended it, if any. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(signal: NodeJS.Signals): void;
}

/**
 * Starts `herald serve` from the build (npm test builds first) on a free
 * loopback port and waits until /healthz responds. `env` adds HERALD_*
 * settings; those of the test's own environment are not passed on.
 */
export async function startHeraldProcess(env: Record<string, string> = {}): Promise<HeraldProcess> {
  const port = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("HERALD_")));
  const managed = startProcess(process.execPath, [HERALD_BIN, "serve", "--port", String(port), "--host", "127.0.0.1"], {
    env: { ...inherited, HERALD_LOG_LEVEL: "info", ...env },
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
    "herald serve to answer /healthz",
  );
  return {
    port,
    http,
    ws: `ws://127.0.0.1:${port}/ws`,
    process: managed,
    exited,
    signal: (signal) => managed.child.kill(signal),
  };
}
