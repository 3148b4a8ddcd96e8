import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { TransportName } from "../src/client/index.js";
import { startHeraldProcess, type HeraldProcess } from "./support/herald-process.js";
import { waitUntil } from "./support/ports.js";
import { RawWebSocket } from "./support/raw-socket.js";
import { startRedis } from "./support/redis.js";
import { SdkSubscriber, waitForEvents } from "./support/sdk-subscriber.js";
import { checkHistory, publishSteadily } from "./support/steady-publisher.js";

const CHANNEL = "drain";
const EVENTS = 3_000;
/** Time between the starts of two publishes, so 3,000 events take at least 9 s. */
const PUBLISH_INTERVAL_MS = 3;
/** The event before which the first node gets SIGTERM. */
const SIGTERM_AT = 1_000;
const TRANSPORTS: TransportName[] = ["websocket", "sse", "poll"];

describe("drain on Redis", () => {
  const cleanups: Array<() => Promise<unknown>> = [];

  after(async () => {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }
  });

  test("SDK clients resume on replacement node", async (t) => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const start = async (port?: number) => {
      const node = await startHeraldProcess({
        ...(port === undefined ? {} : { port }),
        // A drain delay keeps the node serving for a while after the signal, as behind a load balancer.
        // The drain timeout bounds how long the silent client below keeps the drain open.
        args: ["--broker", "redis", "--redis-url", redis.url, "--set", `defaults.historySize=${EVENTS * 2}`, "--set", "drain.delayMs=500", "--set", "drain.timeoutMs=1500"],
      });
      cleanups.push(() => node.stop("SIGKILL"));
      return node;
    };
    const draining = await start();
    const other = await start();

    const subscribers: SdkSubscriber[] = [];
    for (const transport of TRANSPORTS) {
      for (let i = 1; i <= 2; i++) {
        subscribers.push(new SdkSubscriber(`${transport} client ${i}`, draining.http, transport, CHANNEL));
      }
    }
    cleanups.push(async () => subscribers.forEach((subscriber) => subscriber.client.close()));
    await waitUntil(() => subscribers.every((subscriber) => subscriber.ready(CHANNEL)), 20_000, "every SDK client to subscribe");
    // A WebSocket that never replies to the close frame keeps the drain open until its timeout.
    const silent = await RawWebSocket.open(draining.port);
    cleanups.push(async () => silent.destroy());

    // The first attempt at each event goes to the draining node's port,
    // which the replacement takes over. A retry goes to the other node.
    let signalledAt = 0;
    let replacement: Promise<{ exit: { code: number | null; signal: NodeJS.Signals | null }; exitedAt: number; node: HeraldProcess }> | undefined;
    const { offsets, acknowledgedBy, acknowledgedAt, rejected, retries } = await publishSteadily({
      channel: CHANNEL,
      events: EVENTS,
      intervalMs: PUBLISH_INTERVAL_MS,
      workers: 4,
      target: (_index, attempt) => (attempt % 2 === 0 ? draining.http : other.http),
      before: async (index) => {
        if (index === SIGTERM_AT) {
          signalledAt = Date.now();
          draining.signal("SIGTERM");
          replacement = draining.exited.then(async (exit) => ({ exit, exitedAt: Date.now(), node: await start(draining.port) }));
        }
        if (index === EVENTS - 1) {
          // The last event waits for the replacement, so that it reaches the new node.
          await replacement;
        }
      },
    });
    assert.ok(replacement, "the node was never signalled");
    const { exit, exitedAt, node: replaced } = await replacement;
    assert.deepEqual(exit, { code: 0, signal: null }, draining.process.output().slice(-2_000));

    const drainLine = draining.process
      .output()
      .split("\n")
      .find((line) => line.includes('"msg":"draining"'));
    assert.ok(drainLine, "the node logged no drain start");
    const drainStartedAt = (JSON.parse(drainLine) as { time: number }).time;
    const inDrain = acknowledgedAt.filter((at, index) => acknowledgedBy[index] === draining.http && at > drainStartedAt && at < exitedAt).length;
    const duringDrain = acknowledgedAt.filter((at, index) => acknowledgedBy[index] === draining.http && at > signalledAt && at < exitedAt).length;
    assert.ok(inDrain > 0, "the draining node accepted no publish while it drained");
    const rejectedByDraining = rejected.filter((attempt) => attempt.base === draining.http && attempt.at < exitedAt);
    assert.deepEqual(rejectedByDraining, [], "the draining node rejected publishes");
    const afterRestart = acknowledgedAt.filter((at, index) => acknowledgedBy[index] === replaced.http && at > exitedAt).length;
    assert.ok(afterRestart > 0, "the replacement node accepted no publish");

    // Every acknowledged offset is in the history, with the event that got it.
    const indexByOffset = await checkHistory(other.http, CHANNEL, EVENTS);
    for (const [index, offset] of offsets.entries()) {
      assert.equal(indexByOffset.get(offset), index, `event ${index} was acknowledged with offset ${offset}`);
    }

    await waitForEvents(subscribers, EVENTS, 30_000);
    for (const subscriber of subscribers) {
      subscriber.assertExact(EVENTS, indexByOffset);
      assert.ok(subscriber.states.includes("disconnected"), `${subscriber.label} never left the draining node`);
      assert.equal(subscriber.client.state, "connected");
    }
    t.diagnostic(`publish retries: ${retries}; accepted after the signal: ${duringDrain}, after the drain started: ${inDrain}; by the replacement: ${afterRestart}`);
  });
});
