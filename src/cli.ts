import cluster from "node:cluster";
import { constants } from "node:os";
import { runWorkers } from "./cluster.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { EXIT_MARGIN_MS } from "./lifecycle.js";
import { createLogger } from "./log.js";
import { HeraldServer } from "./server.js";
import { isHelpFlag, publishCommand, subscribeCommand, UsageError } from "./cli-client.js";

const USAGE = `Usage:
  herald serve [--config FILE] [--port N] [--host ADDR] [--broker memory|redis]
               [--redis-url URL] [--workers N] [--log-level LEVEL]
               [--set path=value ...]
  herald publish CHANNEL JSON [--url http://127.0.0.1:8080] [--api-key KEY]
  herald subscribe CHANNEL [--url ws://127.0.0.1:8080/ws] [--token JWT]

Every setting can also come from a HERALD_* environment variable, for
example HERALD_PORT=9000 or HERALD_WEBSOCKET_PING_INTERVAL_MS=10000.

On SIGTERM or SIGINT, serve drains and exits 0; a second signal exits at once.`;

/** Runs the herald command; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return serve(rest);
    case "publish":
      return withUsage(() => publishCommand(rest));
    case "subscribe":
      return withUsage(() => subscribeCommand(rest));
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`Unknown command ${JSON.stringify(command)}.\n\n${USAGE}`);
      return 2;
  }
}

async function serve(argv: string[]): Promise<number> {
  if (argv.some(isHelpFlag)) {
    console.log(USAGE);
    return 0;
  }
  let server: HeraldServer;
  let config: Config;
  try {
    config = loadConfig({ argv });
    if (config.workers > 1 && cluster.isPrimary) {
      // Each worker checks the rest of the settings as it starts.
      return runWorkers(config.workers, createLogger(config.log.level));
    }
    if (cluster.isWorker && config.nodeId !== "") {
      // Each worker is a node of its own, so it needs a name of its own.
      config = loadConfig({ argv, overrides: { nodeId: `${config.nodeId}-${cluster.worker?.id}` } });
    }
    // The server checks settings that need more than the schema, such as token keys.
    server = new HeraldServer(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      server.log.warn({ signal }, "second signal: exiting at once");
      // The shell convention for death by a signal: 128 plus its number.
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    server.log.info({ signal }, "signal received");
    // close() bounds every step but closing the broker; this bounds that too.
    const limitMs = config.drain.delayMs + config.drain.timeoutMs + EXIT_MARGIN_MS;
    setTimeout(() => {
      server.log.error({ limitMs }, "shutdown did not finish in time: exiting");
      process.exit(1);
    }, limitMs).unref();
    server.close(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        server.log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  if (cluster.isWorker) {
    // A worker takes its signals from the primary, which forwards the
    // first SIGINT as SIGTERM; a terminal's Ctrl-C reaches the whole
    // process group and would otherwise count as a second signal.
    process.on("SIGINT", () => undefined);
  } else {
    process.on("SIGINT", onSignal);
  }
  try {
    await server.start();
  } catch (error) {
    console.error(listenFailure(error, config.host, config.port));
    await server.close();
    return 1;
  }
  return new Promise<number>(() => {
    // Runs until a signal ends the process.
  });
}

/** Explains why the server could not listen, and what to change. */
function listenFailure(error: unknown, host: string, port: number): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    return `Cannot listen on ${host}:${port}: the port is already in use. Stop the process that uses it, or choose another port with --port or HERALD_PORT.`;
  }
  if (code === "EACCES") {
    return `Cannot listen on ${host}:${port}: permission denied. Ports below 1024 need privileges; choose another port with --port or HERALD_PORT.`;
  }
  if (code === "EADDRNOTAVAIL") {
    return `Cannot listen on ${host}:${port}: the address is not on this machine. Choose another with --host or HERALD_HOST.`;
  }
  return `Cannot start: ${(error as Error).message}`;
}

/** Runs a client command, turning a usage mistake into a message and exit code 2. */
async function withUsage(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
}
