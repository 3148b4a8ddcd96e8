import { WebSocket } from "ws";

interface Options {
  positional: string[];
  flags: Map<string, string>;
}

function parseArgs(argv: string[], known: string[]): Options {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (!known.includes(name)) {
      throw new Error(`Unknown flag --${name}; known: ${known.map((flag) => `--${flag}`).join(", ")}.`);
    }
    if (value === undefined) {
      throw new Error(`Flag --${name} needs a value.`);
    }
    flags.set(name, value);
  }
  return { positional, flags };
}

/** `herald publish CHANNEL JSON`: publishes through the HTTP API and prints the reply. */
export async function publishCommand(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv, ["url", "api-key"]);
  const [channel, json] = positional;
  if (channel === undefined || json === undefined || positional.length > 2) {
    console.error("Usage: herald publish CHANNEL JSON [--url URL] [--api-key KEY]");
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
  const { positional, flags } = parseArgs(argv, ["url", "token"]);
  const [channel] = positional;
  if (channel === undefined || positional.length > 1) {
    console.error("Usage: herald subscribe CHANNEL [--url ws://HOST:PORT/ws] [--token JWT]");
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
    const outcome = await new Promise<{ code: number; fatal: boolean }>((resolve) => {
      const ws = new WebSocket(url);
      current = ws;
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
      ws.on("close", (code) => resolve({ code, fatal: code === 4001 || code === 4003 || code === 1000 }));
      ws.on("error", () => {
        // The close event follows and schedules the reconnect.
      });
    });
    if (stopping) {
      return 0;
    }
    if (outcome.fatal) {
      console.error(`connection closed with ${outcome.code}; not reconnecting`);
      return 1;
    }
    attempt++;
    const delay = Math.random() * Math.min(30_000, 250 * 2 ** attempt);
    console.error(`disconnected (${outcome.code}); reconnecting in ${Math.round(delay)} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
