import assert from "node:assert/strict";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SteadyPublishOptions {
  readonly channel: string;
  /** Number of events to publish. Event i carries `{index: i}` and the idempotency key `event-i`. */
  readonly events: number;
  /** Time between the starts of two publishes, in ms. */
  readonly intervalMs: number;
  /** Maximum publishes in flight. */
  readonly workers: number;
  /** Returns the base URL for one attempt at one event. A retry may go elsewhere. */
  target(index: number, attempt: number): string;
  /** Runs before the event with this index is published. Other workers go on meanwhile. */
  before?(index: number): Promise<void>;
}

export interface SteadyPublishResult {
  /** Attempts that failed and were repeated with the same idempotency key. */
  readonly retries: number;
  /** The offset each event got, by index. */
  readonly offsets: number[];
  /** The base URL that acknowledged each event, by index. */
  readonly acknowledgedBy: string[];
  /** When each event was acknowledged (Date.now()), by index. */
  readonly acknowledgedAt: number[];
  /** Attempts that got a response other than 200, with its status and when it arrived. */
  readonly rejected: Array<{ base: string; status: number; at: number }>;
}

/**
 * Publishes events at a steady rate over HTTP. An attempt that fails
 * (connection error or any status but 200) is repeated with the same
 * idempotency key until it succeeds, so each event is stored once even
 * when a node dies after storing it and before responding.
 */
export async function publishSteadily(options: SteadyPublishOptions): Promise<SteadyPublishResult> {
  const offsets: number[] = [];
  const acknowledgedBy: string[] = [];
  const acknowledgedAt: number[] = [];
  const rejected: Array<{ base: string; status: number; at: number }> = [];
  let retries = 0;
  let next = 0;
  const started = Date.now();

  const publishOne = async (index: number) => {
    for (let attempt = 0; ; attempt++) {
      const base = options.target(index, attempt);
      try {
        const response = await fetch(`${base}/api/publish`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Idempotency-Key": `event-${index}` },
          body: JSON.stringify({ channel: options.channel, data: { index } }),
        });
        const body = (await response.json().catch(() => undefined)) as { offset?: number } | undefined;
        if (response.status === 200 && typeof body?.offset === "number") {
          offsets[index] = body.offset;
          acknowledgedBy[index] = base;
          acknowledgedAt[index] = Date.now();
          return;
        }
        rejected.push({ base, status: response.status, at: Date.now() });
      } catch {
        // The connection failed because the node died or has exited, so retry below.
      }
      retries++;
      assert.ok(attempt < 200, `event ${index} failed 200 publishes in a row`);
      await sleep(25);
    }
  };
  const worker = async () => {
    while (next < options.events) {
      const index = next++;
      const due = started + index * options.intervalMs;
      if (due > Date.now()) {
        await sleep(due - Date.now());
      }
      await options.before?.(index);
      await publishOne(index);
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
  return { retries, offsets, acknowledgedBy, acknowledgedAt, rejected };
}

/**
 * Fetches a channel's history, checks that it contains events 0..events-1
 * once each, and returns the event index at each offset.
 */
export async function checkHistory(base: string, channel: string, events: number): Promise<Map<number, number>> {
  const history = (await fetch(`${base}/api/history?channel=${channel}&limit=${events * 2}`).then((response) => response.json())) as {
    top: number;
    publications: Array<{ offset: number; data: { index: number } }>;
  };
  assert.equal(history.top, events);
  const indexes = history.publications.map((publication) => publication.data.index);
  assert.equal(indexes.length, events);
  assert.equal(new Set(indexes).size, events, "an event is stored twice");
  assert.deepEqual(
    [...indexes].sort((a, b) => a - b),
    Array.from({ length: events }, (_, i) => i),
  );
  return new Map(history.publications.map((publication) => [publication.offset, publication.data.index]));
}
