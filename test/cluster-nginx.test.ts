import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { renderDeployConfig } from "./support/deploy.js";
import { startHeraldProcess, type HeraldProcess } from "./support/herald-process.js";
import { TestClient } from "./support/herald.js";
import { startNginx } from "./support/nginx.js";
import { freePort, waitUntil } from "./support/ports.js";
import { startRedis } from "./support/redis.js";

const CHANNEL = "load";
const EVENTS = 5_000;
/** Time between two publishes; 5,000 events take about 10 s. */
const PUBLISH_INTERVAL_MS = 2;
const CLIENTS = 6;

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
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const nodes: HeraldProcess[] = [];
    for (const id of ["node-1", "node-2", "node-3"]) {
      const node = await startHeraldProcess({
        nodeId: id,
        args: ["--broker", "redis", "--redis-url", redis.url, "--set", `defaults.historySize=${EVENTS * 2}`],
      });
      cleanups.push(() => node.stop("SIGKILL"));
      nodes.push(node);
    }
    const port = await freePort();
    const nginx = await startNginx(renderDeployConfig("deploy/nginx/cluster.conf", port, nodes.map((node) => node.port)), port);
    cleanups.push(() => nginx.stop());
    const base = `http://127.0.0.1:${port}`;

    const clients: ResumingClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const client = new ResumingClient(`ws://127.0.0.1:${port}/ws`);
      await client.connect();
      clients.push(client);
    }
    const victim = "node-2";
    const onVictim = clients.filter((client) => client.node === victim);
    assert.ok(onVictim.length > 0, `no client landed on ${victim}: ${clients.map((client) => client.node).join(", ")}`);

    let retries = 0;
    let next = 0;
    const started = Date.now();
    const publishOne = async (index: number) => {
      for (let attempt = 0; ; attempt++) {
        try {
          const response = await fetch(`${base}/api/publish`, {
            method: "POST",
            headers: { "Content-Type": "application/json", "Idempotency-Key": `event-${index}` },
            body: JSON.stringify({ channel: CHANNEL, data: { index } }),
          });
          await response.arrayBuffer();
          if (response.status === 200) {
            return;
          }
        } catch {
          // The connection failed (the node died mid-request): retry below.
        }
        retries++;
        assert.ok(attempt < 100, `event ${index} failed 100 publishes in a row`);
        await sleep(50);
      }
    };
    const worker = async () => {
      while (next < EVENTS) {
        const index = next++;
        const due = started + index * PUBLISH_INTERVAL_MS;
        if (due > Date.now()) {
          await sleep(due - Date.now());
        }
        if (index === EVENTS / 2) {
          await nodes[1]!.stop("SIGKILL");
        }
        await publishOne(index);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);

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

    const history = await fetch(`${base}/api/history?channel=${CHANNEL}&limit=${EVENTS * 2}`).then((response) => response.json() as Promise<any>);
    assert.equal(history.top, EVENTS);
    const indexes = history.publications.map((publication: any) => publication.data.index as number);
    assert.equal(indexes.length, EVENTS);
    assert.equal(new Set(indexes).size, EVENTS, "an event is stored twice");
    assert.deepEqual([...indexes].sort((a, b) => a - b), expected.map((offset) => offset - 1));
    t.diagnostic(`publish retries: ${retries}; clients on ${victim}: ${onVictim.length}`);
    for (const client of clients) {
      client.close();
    }
  });
});
