import type { IncomingMessage } from "node:http";
import { WebSocket } from "ws";

const PUBLISH_USAGE = `Usage: herald publish CHANNEL JSON [--url URL] [--api-key KEY]

Publishes JSON to CHANNEL through the HTTP API and prints the reply.
  --url      the node's HTTP address (HERALD_URL, default http://127.0.0.1:8080)
  --api-key  the API key to send (HERALD_API_KEY)`;

const SUBSCRIBE_USAGE = `Usage: herald subscribe CHANNEL [--url ws://HOST:PORT/ws] [--token JWT]

Prints each event on CHANNEL as one JSON line, and reconnects from the
last offset after a lost connection.
  --url    the node's WebSocket endpoint (HERALD_WS_URL, default ws://127.0.0.1:8080/ws)
  --token  a client token (HERALD_TOKEN)`;

interface Options {
  positional: string[];
  flags: Map<string, string>;
  help: boolean;
}

/** Returns whether an argument requests help. */
export function isHelpFlag(arg: string): boolean {
  return arg === "--help" || arg === "-h";
}

/** A command line that the command cannot run; the CLI prints it and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

function parseArgs(argv: string[], known: string[]): Options {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (isHelpFlag(arg)) {
      return { positional, flags, help: true };
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (!known.includes(name)) {
      throw new UsageError(`Unknown flag --${name}; known: ${known.map((flag) => `--${flag}`).join(", ")}.`);
    }
    if (value === undefined) {
      throw new UsageError(`Flag --${name} needs a value.`);
    }
    flags.set(name, value);
  }
  return { positional, flags, help: false };
}

/** `herald publish CHANNEL JSON`: publishes through the HTTP API and prints the reply. */
export async function publishCommand(argv: string[]): Promise<number> {
  const { positional, flags, help } = parseArgs(argv, ["url", "api-key"]);
  if (help) {
    console.log(PUBLISH_USAGE);
    return 0;
  }
  const [channel, json] = positional;
  if (channel === undefined || json === undefined || positional.length > 2) {
    console.error(PUBLISH_USAGE);
    return 2;
  }

  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    console.error(`The data is not valid JSON: ${(error as Error).message}. Quote it for the shell, for example '{"text":"hi"}'.`);
    return 2;
  }

  const base = flags.get("url") ?? process.env.HERALD_URL ?? "http://127.0.0.1:8080";
  const apiKey = flags.get("api-key") ?? process.env.HERALD_API_KEY;
  const endpoint = new URL("/api/publish", base);

  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify({ channel, data }),
    });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
    console.error(`Publish to ${endpoint.href} failed: ${cause}. Check that herald serve runs there, or pass --url.`);
    return 1;
  }

  const text = await response.text();
  console.log(text);
  return response.ok ? 0 : 1;
}

/**
 * `herald subscribe CHANNEL`: prints each event as one JSON line. It
 * reconnects with backoff and resumes from the last offset it printed,
 * so a restart of the connection neither loses nor repeats an event.
 */
export async function subscribeCommand(argv: string[]): Promise<number> {
  const { positional, flags, help } = parseArgs(argv, ["url", "token"]);
  if (help) {
    console.log(SUBSCRIBE_USAGE);
    return 0;
  }
  const [channel] = positional;
  if (channel === undefined || positional.length > 1) {
    console.error(SUBSCRIBE_USAGE);
    return 2;
  }
  const url = flags.get("url") ?? process.env.HERALD_WS_URL ?? "ws://127.0.0.1:8080/ws";
  const token = flags.get("token") ?? process.env.HERALD_TOKEN;
  let position: { epoch: string; offset: number } | undefined;
  let attempt = 0;
  let current: WebSocket | undefined;
  let stopping = false;

  // Ctrl-C or SIGTERM closes the connection cleanly and exits 0.
  const stop = () => {
    stopping = true;
    current?.close(1000);
    setTimeout(() => process.exit(0), 1_000).unref();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  for (;;) {
    const outcome = await new Promise<{ code: number; fatal: boolean; cause?: string }>((resolve) => {
      const ws = new WebSocket(url);
      current = ws;
      let cause: string | undefined;
      ws.on("unexpected-response", (_request, response) => {
        void rejectedUpgrade(response).then((rejection) => {
          resolve({ code: 1006, ...rejection });
          ws.terminate();
        });
      });
      ws.on("open", () => {
        attempt = 0;
        ws.send(JSON.stringify({ id: 1, type: "connect", ...(token ? { token } : {}) }));
        ws.send(JSON.stringify({ id: 2, type: "subscribe", channel, ...(position ? { since: position } : {}) }));
      });
      ws.on("message", (raw) => {
        for (const line of raw.toString().split("\n")) {
          let message: Record<string, unknown>;
          try {
            message = JSON.parse(line) as Record<string, unknown>;
          } catch {
            console.error(`ignored a message that is not JSON: ${line.slice(0, 80)}`);
            continue;
          }
          if (message.type === "pub" && message.channel === channel) {
            if (position) position = { epoch: position.epoch, offset: message.offset as number };
            console.log(JSON.stringify({ channel, offset: message.offset, data: message.data }));
          } else if (message.type === "reply" && message.id === 2) {
            const result = message.result as { epoch: string; offset: number };
            position = { epoch: result.epoch, offset: position?.epoch === result.epoch ? position.offset : result.offset };
            console.error(`subscribed to ${channel} at epoch ${position.epoch}, offset ${position.offset}`);
          } else if (message.type === "gap") {
            position = { epoch: message.epoch as string, offset: message.offset as number };
            console.error(`gap: events were missed on ${channel}; continuing from offset ${position.offset}`);
          } else if (message.type === "error") {
            const error = message.error as { code: string; message: string };
            console.error(`error ${error.code}: ${error.message}`);
            if (message.id === 2) ws.close(1000);
          }
        }
      });
      ws.on("close", (code) => resolve({ code, fatal: code === 4001 || code === 4003 || code === 1000, cause }));
      ws.on("error", (error) => {
        // The close event follows and schedules the reconnect.
        cause = error.message;
      });
    });
    if (stopping) {
      return 0;
    }
    if (outcome.fatal) {
      console.error(outcome.cause ? `${outcome.cause}; not reconnecting` : `connection closed with ${outcome.code}; not reconnecting`);
      return 1;
    }
    attempt++;
    const delay = Math.random() * Math.min(30_000, 250 * 2 ** attempt);
    const reason = outcome.cause ? `: ${outcome.cause}` : "";
    console.error(`disconnected (${outcome.code}${reason}); reconnecting in ${Math.round(delay)} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/**
 * Describes an upgrade that got an HTTP response instead of 101. A 4xx
 * other than 429 (wrong path, bad token, forbidden origin) fails again on
 * every retry, so it is fatal; 429 and 5xx are worth retrying.
 */
async function rejectedUpgrade(response: IncomingMessage): Promise<{ fatal: boolean; cause: string }> {
  const status = response.statusCode ?? 0;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      size += (chunk as Buffer).length;
      if (size > 64 * 1024) {
        break;
      }
      chunks.push(chunk as Buffer);
    }
  } catch {
    // The status alone still explains the rejection.
  }
  let detail = "";
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: { code?: string; message?: string } };
    if (body.error?.code) {
      detail = ` (${body.error.code}: ${body.error.message ?? ""})`;
    }
  } catch {
    // Not a Herald error body, for example a proxy's HTML page.
  }
  return { fatal: status >= 400 && status < 500 && status !== 429, cause: `the server rejected the WebSocket upgrade with HTTP ${status}${detail}` };
}
