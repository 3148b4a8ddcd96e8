import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { TransportName } from "../src/client/index.js";
import { TestClient } from "./support/herald.js";
import { startNginxCluster } from "./support/nginx-cluster.js";
import { waitUntil } from "./support/ports.js";
import { SdkSubscriber, waitForEvents } from "./support/sdk-subscriber.js";
import { checkHistory, publishSteadily } from "./support/steady-publisher.js";

const CHANNEL = "load";
const EVENTS = 5_000;
/** Time between two publishes; 5,000 events take about 10 s. */
const PUBLISH_INTERVAL_MS = 2;
const CLIENTS = 6;
const SDK_EVENTS = 4_000;
/** Time between the starts of two publishes, so 4,000 events take at least 10 s. */
const SDK_PUBLISH_INTERVAL_MS = 2.5;
const TRANSPORTS: TransportName[] = ["websocket", "sse", "poll"];
const NODE_IDS = ["node-1", "node-2", "node-3"];
/** The node killed midway through publishing. */
const VICTIM = "node-2";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A WebSocket subscriber that reconnects through the proxy with its
 * affinity cookie whenever its connection ends, and resumes the channel
 * from the last offset it received, as the client SDK does.
 */
class ResumingClient {
  readonly offsets: number[] = [];
  readonly gaps: unknown[] = [];
  readonly nodes: string[] = [];
  reconnects = 0;
  private epoch: string | undefined;
  private cookie: string | undefined;
  private client: TestClient | undefined;
  private stopped = false;

  constructor(private readonly url: string) {}

  async connect(): Promise<void> {
    const client = new TestClient(this.url, this.cookie === undefined ? {} : { headers: { Cookie: this.cookie } });
    client.socket.once("upgrade", (response) => {
      const header = response.headers["set-cookie"]?.[0];
      if (header !== undefined) {
        this.cookie = header.split(";")[0];
      }
    });
    await client.opened;
    this.client = client;
    client.socket.on("message", () => this.collect(client));
    client.closed.then(() => this.reconnect());

    const connected = await client.request({ type: "connect" });
    this.nodes.push(connected.result.node);
    const last = this.offsets.at(-1);
    const since = this.epoch === undefined || last === undefined ? undefined : { epoch: this.epoch, offset: last };
    const reply = await client.request({ type: "subscribe", channel: CHANNEL, ...(since ? { since } : {}) });
    assert.equal(reply.type, "reply", JSON.stringify(reply));
    this.epoch = reply.result.epoch;
  }

  get node(): string | undefined {
    return this.nodes.at(-1);
  }

  close(): void {
    this.stopped = true;
    this.client?.close();
  }

  /** Moves the pubs this connection received since the last call into `offsets`. */
  private collect(client: TestClient): void {
    const pubs = client.messages.filter((message) => message.type === "pub" || message.type === "gap");
    client.messages.length = 0;
    for (const message of pubs) {
      if (message.type === "gap") {
        this.gaps.push(message);
      } else {
        this.offsets.push(message.offset);
      }
    }
  }

  private async reconnect(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.reconnects++;
    for (let attempt = 0; !this.stopped; attempt++) {
      await sleep(100);
      try {
        await this.connect();
        return;
      } catch {
        if (attempt > 50) {
          throw new Error("the client could not reconnect through nginx");
        }
      }
    }
  }
}

describe("three nodes behind nginx", () => {
  const cleanups: Array<() => Promise<unknown>> = [];

  after(async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }
  });

  test("node killed mid-stream loses and repeats nothing", async (t) => {
    const cluster = await startNginxCluster(EVENTS * 2);
    cleanups.push(() => cluster.stop());

    const clients: ResumingClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const client = new ResumingClient(`ws://127.0.0.1:${cluster.port}/ws`);
      await client.connect();
      clients.push(client);
    }
    const victim = VICTIM;
    const onVictim = clients.filter((client) => client.node === victim);
    assert.ok(onVictim.length > 0, `no client landed on ${victim}: ${clients.map((client) => client.node).join(", ")}`);

    const { retries } = await publishSteadily({
      channel: CHANNEL,
      events: EVENTS,
      intervalMs: PUBLISH_INTERVAL_MS,
      workers: 4,
      target: () => cluster.base,
      before: async (index) => {
        if (index === EVENTS / 2) {
          await cluster.nodes[1]!.stop("SIGKILL");
        }
      },
    });

    await waitUntil(() => clients.every((client) => client.offsets.length >= EVENTS), 60_000, `${EVENTS} events at every client`);
    const expected = Array.from({ length: EVENTS }, (_, i) => i + 1);
    for (const [i, client] of clients.entries()) {
      assert.deepEqual(client.gaps, [], `client ${i} got gap notices`);
      assert.deepEqual(client.offsets, expected, `client ${i} (nodes ${client.nodes.join(" → ")})`);
    }
    for (const client of onVictim) {
      assert.ok(client.reconnects >= 1);
      assert.notEqual(client.node, victim);
    }

    await checkHistory(cluster.base, CHANNEL, EVENTS);
    t.diagnostic(`publish retries: ${retries}; clients on ${victim}: ${onVictim.length}`);
    for (const client of clients) {
      client.close();
    }
  });

  test("SDK transports survive a killed node", async (t) => {
    const cluster = await startNginxCluster(SDK_EVENTS * 2);
    cleanups.push(() => cluster.stop());

    // One client per transport and node. The affinity cookie pins it to
    // that node, and nginx sends it to a backup node once its node dies.
    // One more per transport has no cookie, so that nginx balances each
    // of its requests and reconnects round robin.
    const subscribers: SdkSubscriber[] = [];
    const pinnedTo = new Map<SdkSubscriber, string>();
    for (const transport of TRANSPORTS) {
      for (const node of NODE_IDS) {
        const subscriber = new SdkSubscriber(`${transport} on ${node}`, cluster.base, transport, CHANNEL, `herald_node=${node}`);
        subscribers.push(subscriber);
        pinnedTo.set(subscriber, node);
      }
      subscribers.push(new SdkSubscriber(`${transport} without cookie`, cluster.base, transport, CHANNEL));
    }
    cleanups.push(async () => subscribers.forEach((subscriber) => subscriber.client.close()));
    await waitUntil(() => subscribers.every((subscriber) => subscriber.ready(CHANNEL)), 20_000, "every SDK client to subscribe");
    assert.ok(subscribers.every((subscriber) => subscriber.states.at(-1) === "connected"));

    const publishStarted = Date.now();
    const { retries } = await publishSteadily({
      channel: CHANNEL,
      events: SDK_EVENTS,
      intervalMs: SDK_PUBLISH_INTERVAL_MS,
      workers: 4,
      target: () => cluster.base,
      before: async (index) => {
        if (index === SDK_EVENTS / 2) {
          await cluster.nodes[NODE_IDS.indexOf(VICTIM)]!.stop("SIGKILL");
        }
      },
    });

    const published = Date.now();
    await waitForEvents(subscribers, SDK_EVENTS, 45_000);
    const indexByOffset = await checkHistory(cluster.base, CHANNEL, SDK_EVENTS);
    for (const subscriber of subscribers) {
      subscriber.assertExact(SDK_EVENTS, indexByOffset);
    }
    // The streaming clients on the killed node lost their connection, and
    // the others kept theirs. A poll client whose node died mid-poll may have
    // been carried over by nginx's retry without noticing.
    for (const subscriber of subscribers) {
      const pinned = pinnedTo.get(subscriber);
      const lostNode = pinned === VICTIM;
      const disconnected = subscriber.states.includes("disconnected");
      if (subscriber.transport !== "poll" && pinned !== undefined) {
        assert.equal(disconnected, lostNode, `${subscriber.label}: states ${subscriber.states.join(" → ")}`);
      }
    }
    t.diagnostic(`publish retries: ${retries}; publishing took ${published - publishStarted} ms, delivery ${Date.now() - published} ms more`);
  });
});
