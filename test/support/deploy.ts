import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitUntil } from "./ports.js";
import { startProcess, tempDir } from "./processes.js";
import { canConnect } from "./nginx.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Reads a file under deploy/ and points it at this test's ports: the
 * proxy listens on `listen`, and node-1, node-2 and node-3 (addresses
 * 127.0.0.1:8081 to :8083 in the file) are at `nodes[0..2]`.
 */
export function renderDeployConfig(path: string, listen: number, nodes: readonly number[]): string {
  const text = readFileSync(join(ROOT, path), "utf8");
  return text
    .replace(/127\.0\.0\.1:808([1-3])\b/g, (_, index: string) => `127.0.0.1:${nodes[Number(index) - 1]}`)
    .replace(/listen 8080;/g, `listen 127.0.0.1:${listen};`)
    .replace(/bind 127\.0\.0\.1:8080\b/g, `bind 127.0.0.1:${listen}`);
}

/** Runs Debian's HAProxy in the foreground with the given configuration text. */
export async function startHaproxy(config: string, port: number): Promise<{ stop(): Promise<void>; output(): string }> {
  const dir = tempDir("herald-haproxy-");
  const path = join(dir.path, "haproxy.cfg");
  writeFileSync(path, config);
  const child = startProcess("haproxy", ["-f", path, "-db"]);
  await waitUntil(
    async () => {
      if (child.child.exitCode !== null) {
        throw new Error(`haproxy exited with ${child.child.exitCode}: ${child.output()}`);
      }
      return canConnect(port);
    },
    10_000,
    `haproxy on port ${port}`,
  );
  return {
    output: () => child.output(),
    async stop() {
      await child.stop("SIGTERM");
      dir.cleanup();
    },
  };
}
