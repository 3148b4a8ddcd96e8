import { WebSocket } from "ws";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { HeraldServer, type HeraldOptions } from "../../src/server.js";

/** Starts a node in this process on a free loopback port. */
export async function startHerald(
  overrides: Record<string, unknown> = {},
  options: HeraldOptions = {},
): Promise<{ server: HeraldServer; port: number; http: string; ws: string; close(): Promise<void> }> {
  const config = loadConfig({
    env: {},
    overrides: { port: 0, host: "127.0.0.1", log: { level: process.env.HERALD_TEST_LOG ?? "silent" }, ...overrides },
  });
  const server = new HeraldServer(config, { logger: createLogger(config.log.level), ...options });
  const port = await server.start();
  return {
    server,
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    close: () => server.close(),
  };
}

/** POSTs a JSON body to the node and returns status and parsed body. */
export async function postJson(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any, headers: response.headers };
}

export async function publish(base: string, channel: string, data: unknown): Promise<{ epoch: string; offset: number }> {
  const { status, body } = await postJson(base, "/api/publish", { channel, data });
  if (status !== 200) {
    throw new Error(`publish failed with ${status}: ${JSON.stringify(body)}`);
  }
  return body;
}

/**
 * A WebSocket test client that records every server message and matches
 * replies to requests by id.
 */
export class TestClient {
  readonly messages: any[] = [];
  readonly socket: WebSocket;
  private nextId = 1;
  private waiters: Array<{ test: (message: any) => boolean; resolve: (message: any) => void }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}) {
    this.socket = new WebSocket(url, options);
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("error", reject);
    });
    this.closed = new Promise((resolve) => {
      this.socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.socket.on("message", (data) => {
      for (const line of data.toString().split("\n")) {
        const message = JSON.parse(line);
        this.messages.push(message);
        this.waiters = this.waiters.filter((waiter) => {
          if (waiter.test(message)) {
            waiter.resolve(message);
            return false;
          }
          return true;
        });
      }
    });
    this.socket.on("error", () => undefined);
  }

  static async open(url: string, options?: ConstructorParameters<typeof WebSocket>[2]): Promise<TestClient> {
    const client = new TestClient(url, options);
    await client.opened;
    return client;
  }

  /** Sends a command and resolves with its reply or error message. */
  request(command: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    const reply = this.waitFor((message) => message.id === id);
    this.socket.send(JSON.stringify({ id, ...command }));
    return reply;
  }

  waitFor(test: (message: any) => boolean, timeoutMs = 10_000): Promise<any> {
    const found = this.messages.find(test);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for a message`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
      });
    });
  }

  /** Publications received on a channel, in arrival order. */
  pubs(channel: string): any[] {
    return this.messages.filter((message) => message.type === "pub" && message.channel === channel);
  }

  async waitForPubs(channel: string, count: number, timeoutMs = 10_000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.pubs(channel).length < count) {
      if (Date.now() > deadline) {
        throw new Error(`expected ${count} events on ${channel}, got ${this.pubs(channel).length}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.pubs(channel);
  }

  close(): void {
    this.socket.close();
  }
}
