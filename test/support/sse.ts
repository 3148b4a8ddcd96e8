import { request, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { createParser, type EventSourceMessage } from "eventsource-parser";

/**
 * Collects the events, retry fields and comments of one event stream,
 * parsed by eventsource-parser, whatever carries the bytes.
 */
export class SseRecorder {
  readonly events: EventSourceMessage[] = [];
  readonly retries: number[] = [];
  comments = 0;
  /** The raw text in arrival order, for checks on the field order. */
  text = "";
  private readonly parser = createParser({
    onEvent: (event) => this.events.push(event),
    onRetry: (ms) => this.retries.push(ms),
    onComment: () => {
      this.comments++;
    },
  });

  feed(chunk: string): void {
    this.text += chunk;
    this.parser.feed(chunk);
  }

  /** Default (message) events, with their data parsed. */
  messages(): Array<{ id: string | undefined; channel: string; offset: number; data: unknown }> {
    return this.events
      .filter((event) => event.event === undefined)
      .map((event) => ({ id: event.id, ...(JSON.parse(event.data) as { channel: string; offset: number; data: unknown }) }));
  }

  named(name: string): EventSourceMessage[] {
    return this.events.filter((event) => event.event === name);
  }

  async waitFor(check: () => boolean, timeoutMs = 10_000, what = "events"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; received so far:\n${this.text.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  waitForMessages(count: number, timeoutMs = 10_000): Promise<void> {
    return this.waitFor(() => this.messages().length >= count, timeoutMs, `${count} messages`);
  }
}

export interface SseResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly recorder: SseRecorder;
  /** Settles when the server ends or cuts the response. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens an event stream over HTTP/1.1 on its own connection and resolves once the headers arrive. */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { Accept: "text/event-stream", ...headers } }, (res) => {
      const recorder = new SseRecorder();
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => recorder.feed(chunk));
      const ended = new Promise<void>((done) => {
        res.once("close", () => done());
      });
      res.on("error", () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        recorder,
        ended,
        close: () => req.destroy(),
      });
    });
    req.once("error", reject);
    req.end();
  });
}

/** GETs a URL and returns status and parsed JSON body. */
export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { headers });
  return { status: response.status, body: await response.json() };
}

/** Sends a GET on a raw socket and never reads the response. */
export function pausedReader(port: number, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.once("error", reject);
  });
}
