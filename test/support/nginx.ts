import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitUntil } from "./ports.js";
import { startProcess, tempDir } from "./processes.js";
import { Socket } from "node:net";

/**
 * Runs Debian's nginx in the foreground with a generated config whose
 * `http` block includes the given server configuration text. Paths for
 * pid, logs and temp files point into a temporary directory.
 */
export async function startNginx(httpBlock: string, port: number): Promise<{ stop(): Promise<void>; errorLog(): string; dir: string }> {
  const dir = tempDir("herald-nginx-");
  const config = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir.path, "nginx.pid")};
error_log ${join(dir.path, "error.log")} info;
events { worker_connections 4096; }
http {
  access_log ${join(dir.path, "access.log")};
  client_body_temp_path ${join(dir.path, "body")};
  proxy_temp_path ${join(dir.path, "proxy")};
  fastcgi_temp_path ${join(dir.path, "fastcgi")};
  uwsgi_temp_path ${join(dir.path, "uwsgi")};
  scgi_temp_path ${join(dir.path, "scgi")};
${httpBlock}
}
`;
  const path = join(dir.path, "nginx.conf");
  writeFileSync(path, config);
  const process = startProcess("nginx", ["-c", path, "-p", dir.path]);
  await waitUntil(() => canConnect(port), 10_000, `nginx on port ${port}`);
  return {
    dir: dir.path,
    errorLog: () => process.output(),
    async stop() {
      await process.stop("SIGQUIT");
      dir.cleanup();
    },
  };
}

export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("error", () => resolve(false));
    socket.connect(port, host, () => {
      socket.destroy();
      resolve(true);
    });
  });
}
