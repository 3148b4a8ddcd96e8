import assert from "node:assert/strict";
import { EventSource } from "eventsource";
import { WebSocket } from "ws";
import { waitUntil } from "./ports.js";
import { HeraldClient, type ClientState, type FetchFunction, type GapNotice, type TransportName } from "../../src/client/index.js";

/**
 * An SDK client on one transport that records the events its handler receives.
 * With a cookie, every request it makes carries it (the affinity cookie
 * that pins the client to one node behind a proxy).
 */
export class SdkSubscriber {
  readonly client: HeraldClient;
  readonly offsets: number[] = [];
  /** The `index` field of each event's data, in the order seen. */
  readonly indexes: number[] = [];
  readonly gaps: GapNotice[] = [];
  readonly states: ClientState[] = [];
  readonly errors: string[] = [];

  constructor(
    readonly label: string,
    url: string,
    readonly transport: TransportName,
    channel: string,
    cookie?: string,
  ) {
    const fetchWithCookie: FetchFunction = (input, init) => {
      const headers = new Headers(init?.headers);
      if (cookie !== undefined) {
        headers.set("Cookie", cookie);
      }
      return fetch(input, { ...init, headers });
    };
    const headers = cookie === undefined ? {} : { Cookie: cookie };
    class CookieWebSocket extends WebSocket {
      constructor(address: string) {
        super(address, { headers });
      }
    }
    class CookieEventSource extends EventSource {
      constructor(address: string) {
        super(address, { fetch: fetchWithCookie as never });
      }
    }
    this.client = new HeraldClient({
      url,
      transports: [transport],
      minDelayMs: 50,
      maxDelayMs: 500,
      connectTimeoutMs: 5_000,
      WebSocket: CookieWebSocket as never,
      EventSource: CookieEventSource as never,
      fetch: fetchWithCookie,
    });
    this.client.on("state", (change) => this.states.push(change.state));
    this.client.on("gap", (gap) => this.gaps.push(gap));
    this.client.on("error", (error) => this.errors.push(`${error.code}: ${error.message}`));
    this.client.subscribe(channel, (data, context) => {
      this.offsets.push(context.offset);
      this.indexes.push((data as { index: number }).index);
    });
  }

  /** Returns whether the client is connected and has a position, so that it receives every event published from now on. */
  ready(channel: string): boolean {
    return this.client.state === "connected" && this.client.position(channel) !== undefined;
  }

  /** Checks that the handler saw offsets 1..events once each, in order, with the data stored at each offset. */
  assertExact(events: number, indexByOffset: Map<number, number>): void {
    const context = `${this.label} (states ${this.states.join(" → ")}; errors ${this.errors.join("; ") || "none"})`;
    assert.deepEqual(this.gaps, [], `${context} got gap notices`);
    assert.equal(this.offsets.length, events, `${context} saw ${this.offsets.length} events`);
    for (let i = 0; i < events; i++) {
      if (this.offsets[i] !== i + 1) {
        assert.fail(`${context}: event ${i} has offset ${this.offsets[i]}; expected ${i + 1}`);
      }
      if (this.indexes[i] !== indexByOffset.get(i + 1)) {
        assert.fail(`${context}: offset ${i + 1} carried index ${this.indexes[i]}; history has ${indexByOffset.get(i + 1)}`);
      }
    }
  }
}

/** Waits until every subscriber has received `events` events; the timeout error lists each one's count. */
export async function waitForEvents(subscribers: readonly SdkSubscriber[], events: number, timeoutMs: number): Promise<void> {
  try {
    await waitUntil(() => subscribers.every((subscriber) => subscriber.offsets.length >= events), timeoutMs, `${events} events at every client`);
  } catch (error) {
    const counts = subscribers.map((subscriber) => `${subscriber.label}: ${subscriber.offsets.length}`).join(", ");
    throw new Error(`${(error as Error).message} (${counts})`);
  }
}
