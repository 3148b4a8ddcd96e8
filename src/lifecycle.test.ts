import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Lifecycle, type LifecycleEvent } from "./lifecycle.js";

function record(lifecycle: Lifecycle): LifecycleEvent[] {
  const events: LifecycleEvent[] = [];
  lifecycle.on((event) => events.push(event));
  return events;
}

describe("Lifecycle", () => {
  test("starts running and ready", () => {
    const lifecycle = new Lifecycle();
    assert.equal(lifecycle.state, "running");
    assert.equal(lifecycle.shuttingDown, false);
  });

  test("shutdown request leaves the state running", () => {
    const lifecycle = new Lifecycle();
    const events = record(lifecycle);
    assert.equal(lifecycle.requestShutdown("SIGTERM", 5_000, 120_000), true);
    assert.equal(lifecycle.shuttingDown, true);
    assert.equal(lifecycle.state, "running");
    assert.deepEqual(events, [{ type: "shutdown_requested", reason: "SIGTERM", delayMs: 5_000, timeoutMs: 120_000 }]);
  });

  test("second shutdown request is ignored", () => {
    const lifecycle = new Lifecycle();
    const events = record(lifecycle);
    lifecycle.requestShutdown("SIGTERM", 0, 1_000);
    assert.equal(lifecycle.requestShutdown("SIGINT", 0, 1_000), false);
    assert.equal(events.length, 1);
  });

  test("moves running, draining, closed in order", () => {
    const lifecycle = new Lifecycle();
    const events = record(lifecycle);
    lifecycle.requestShutdown("close", 0, 1_000);
    lifecycle.startDraining(3);
    assert.equal(lifecycle.state, "draining");
    lifecycle.drainTimedOut(1);
    lifecycle.close(1_200);
    assert.equal(lifecycle.state, "closed");
    assert.deepEqual(
      events.map((event) => event.type),
      ["shutdown_requested", "draining", "drain_timed_out", "closed"],
    );
    assert.deepEqual(events[1], { type: "draining", connections: 3 });
    assert.deepEqual(events[3], { type: "closed", elapsedMs: 1_200 });
  });

  test("rejects draining before a shutdown request", () => {
    const lifecycle = new Lifecycle();
    assert.throws(() => lifecycle.startDraining(0), /draining is invalid in state running before a shutdown request/);
    assert.equal(lifecycle.state, "running");
  });

  test("rejects steps out of order", () => {
    const lifecycle = new Lifecycle();
    lifecycle.requestShutdown("close", 0, 1_000);
    assert.throws(() => lifecycle.close(0), /closed is invalid in state running/);
    assert.throws(() => lifecycle.drained(0), /drained is invalid in state running/);
    lifecycle.startDraining(0);
    assert.throws(() => lifecycle.startDraining(0), /draining is invalid in state draining/);
    lifecycle.drained(10);
    lifecycle.close(10);
    assert.throws(() => lifecycle.close(0), /closed is invalid in state closed/);
    assert.throws(() => lifecycle.drainTimedOut(0), /drain_timed_out is invalid in state closed/);
  });

  test("removed listener gets no more events", () => {
    const lifecycle = new Lifecycle();
    const events: LifecycleEvent[] = [];
    const off = lifecycle.on((event) => events.push(event));
    lifecycle.requestShutdown("close", 0, 1_000);
    off();
    lifecycle.startDraining(0);
    assert.equal(events.length, 1);
  });
});
