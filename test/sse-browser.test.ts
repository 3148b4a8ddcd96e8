import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { startHerald } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script>
  window.received = [];
  window.subscribed = [];
  window.errors = 0;
  const source = new EventSource("/sse?channel=ba&channel=bb");
  source.onmessage = (event) => window.received.push({ id: event.lastEventId, ...JSON.parse(event.data) });
  source.addEventListener("subscribed", (event) => window.subscribed.push(JSON.parse(event.data)));
  source.onerror = () => { window.errors++; };
</script>`;

describe("sse in chromium", () => {
  let node: Node;
  let browser: Browser;

  before(async () => {
    node = await startHerald({ sse: { retryMs: 100 } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser.close();
    await node.close();
  });

  test("EventSource resumes after the server cuts", async () => {
    const page = await browser.newPage();
    // The page is served at the node's origin, so EventSource needs no CORS.
    await page.route(`${node.http}/page`, (route) => route.fulfill({ contentType: "text/html", body: PAGE }));
    await page.goto(`${node.http}/page`);
    const read = <T>(expression: string) => page.evaluate(expression) as Promise<T>;

    await waitUntil(async () => (await read<number>("window.subscribed.length")) === 1, 10_000, "the subscribed event");
    for (let i = 1; i <= 3; i++) {
      await node.server.hub.publish("ba", JSON.stringify({ i }));
      await node.server.hub.publish("bb", JSON.stringify({ i }));
    }
    await waitUntil(async () => (await read<number>("window.received.length")) === 6, 10_000, "6 events");

    for (const socket of node.server.listener.sockets) {
      socket.destroy();
    }
    await waitUntil(() => node.server.hub.subscriptionCount === 0, 5_000, "the subscriptions to be released");
    for (let i = 4; i <= 13; i++) {
      await node.server.hub.publish("ba", JSON.stringify({ i }));
      await node.server.hub.publish("bb", JSON.stringify({ i }));
    }
    await waitUntil(async () => (await read<number>("window.received.length")) >= 26, 10_000, "26 events");
    await new Promise((resolve) => setTimeout(resolve, 200));

    const received = await read<Array<{ channel: string; offset: number; data: { i: number } }>>("window.received");
    const subscribed = await read<any[]>("window.subscribed");
    assert.equal(received.length, 26);
    assert.equal(subscribed.length, 2);
    assert.ok((await read<number>("window.errors")) >= 1, "the page saw the cut");
    for (const channel of ["ba", "bb"]) {
      const events = received.filter((event) => event.channel === channel);
      const expected = Array.from({ length: 13 }, (_, i) => i + 1);
      assert.deepEqual(events.map((event) => event.offset), expected, channel);
      assert.deepEqual(events.map((event) => event.data.i), expected, channel);
    }
    await page.close();
  });
});
