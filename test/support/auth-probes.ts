import { WebSocket } from "ws";
import { postJson, TestClient } from "./herald.js";

/** How one subscribe attempt ended: served (an event arrived) or rejected with an error code. */
export type ProbeOutcome = { served: true; data: unknown } | { served: false; code: string; status?: number };

/**
 * One transport's way to subscribe with a token and wait for the next
 * event. The auth suite runs every probe whose transport the node serves,
 * so SSE and long-polling are covered as soon as their endpoints exist.
 */
export interface TransportProbe {
  readonly name: string;
  available(http: string): Promise<boolean>;
  /** Subscribes to `channel` with `token`; once subscribed, calls `publishOne` and waits for the event. */
  receive(http: string, channel: string, token: string | undefined, publishOne: () => Promise<void>): Promise<ProbeOutcome>;
}

const TIMEOUT_MS = 5_000;

export const websocketProbe: TransportProbe = {
  name: "websocket",
  available: async () => true,
  async receive(http, channel, token, publishOne) {
    const client = await TestClient.open(`${http.replace("http", "ws")}/ws`);
    try {
      if (token !== undefined) {
        const connected = await client.request({ type: "connect", token });
        if (connected.type === "error") {
          return { served: false, code: connected.error.code };
        }
      }
      const reply = await client.request({ type: "subscribe", channel });
      if (reply.type === "error") {
        return { served: false, code: reply.error.code };
      }
      await publishOne();
      const [event] = await client.waitForPubs(channel, 1, TIMEOUT_MS);
      return { served: true, data: event.data };
    } finally {
      client.close();
    }
  },
};

export const sseProbe: TransportProbe = {
  name: "sse",
  available: (http) => endpointExists(`${http}/sse?channel=probe`),
  async receive(http, channel, token, publishOne) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(`${http}/sse?channel=${encodeURIComponent(channel)}`, {
        headers: authorization(token),
        signal: controller.signal,
      });
      if (response.status !== 200 || !response.body) {
        return await rejected(response);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      let published = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          return { served: false, code: "stream_ended" };
        }
        text += value;
        if (!published && text.includes("event: subscribed")) {
          published = true;
          await publishOne();
        }
        const event = /(?:^|\n\n)(?:id: [^\n]*\n)?data: ([^\n]*)\n\n/.exec(text.slice(text.indexOf("event: subscribed") + 1));
        if (published && event) {
          return { served: true, data: (JSON.parse(event[1]!) as { data: unknown }).data };
        }
      }
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  },
};

export const pollProbe: TransportProbe = {
  name: "poll",
  available: (http) => endpointExists(`${http}/poll?channel=probe`),
  async receive(http, channel, token, publishOne) {
    const pending = fetch(`${http}/poll?channel=${encodeURIComponent(channel)}`, {
      headers: authorization(token),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    // A poll without a cursor waits for the next event, so publish once the request is held.
    const publisher = new Promise((resolve) => setTimeout(resolve, 200)).then(publishOne);
    const response = await pending;
    if (response.status !== 200) {
      await publisher.catch(() => undefined);
      return await rejected(response);
    }
    await publisher;
    const body = (await response.json()) as { events: Array<{ data: unknown }> };
    return body.events.length > 0 ? { served: true, data: body.events[0]!.data } : { served: false, code: "no_event" };
  },
};

export const ALL_PROBES: readonly TransportProbe[] = [websocketProbe, sseProbe, pollProbe];

/** Publishes through the API with a key. */
export async function publishWithKey(http: string, apiKey: string, channel: string, data: unknown) {
  return postJson(http, "/api/publish", { channel, data }, { Authorization: `Bearer ${apiKey}` });
}

function authorization(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

async function rejected(response: Response): Promise<ProbeOutcome> {
  const text = await response.text();
  try {
    return { served: false, code: (JSON.parse(text) as { error: { code: string } }).error.code, status: response.status };
  } catch {
    return { served: false, code: `status_${response.status}`, status: response.status };
  }
}

async function endpointExists(url: string): Promise<boolean> {
  const controller = new AbortController();
  try {
    const response = await fetch(url, { signal: controller.signal });
    return response.status !== 404;
  } catch {
    return false;
  } finally {
    controller.abort();
  }
}

/** Attempts a WebSocket upgrade and returns the HTTP status and error code of a rejection. */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.on("open", () => {
      socket.close();
      resolve({ status: 101, code: undefined });
    });
    socket.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => {
        const code = (JSON.parse(body) as { error: { code: string } }).error.code;
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    socket.on("error", (error) => reject(error));
  });
}

