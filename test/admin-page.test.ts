import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EventSource } from "eventsource";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { sample, scrape } from "./support/prometheus.js";

const TOKEN = "admin-page-test-token";

type Node = Awaited<ReturnType<typeof startHerald>>;

async function subscribedClients(node: Node, channel: string, count: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  const sources: SseClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel });
    assert.equal(reply.type, "reply");
    clients.push(client);
  }
  return clients;
}

/** A real SSE client from the `eventsource` package, with the data of each message it receives. */
interface SseClient {
  source: EventSource;
  received: unknown[];
}

async function sseClients(node: Node, channel: string, count: number): Promise<SseClient[]> {
  const clients: SseClient[] = [];
  for (let i = 0; i < count; i++) {
    const source = new EventSource(`${node.http}/sse?channel=${encodeURIComponent(channel)}`, { fetch });
    const client: SseClient = { source, received: [] };
    let subscribed = false;
    source.addEventListener("subscribed", () => {
      subscribed = true;
    });
    source.addEventListener("message", (event) => client.received.push(JSON.parse(event.data).data));
    clients.push(client);
    await waitUntil(() => subscribed, 5_000, `SSE client ${i} to subscribe to ${channel}`);
  }
  return clients;
}

async function textOf(page: Page, selector: string): Promise<string | null> {
  return page.locator(selector).first().textContent({ timeout: 1_000 }).catch(() => null);
}

/** Waits until the element's text equals `expected`, without reloading the page. */
async function waitForText(page: Page, selector: string, expected: string, timeoutMs = 10_000): Promise<void> {
  await page.waitForFunction(
    ([sel, text]) => document.querySelector(sel!)?.textContent === text,
    [selector, expected],
    { timeout: timeoutMs, polling: 100 },
  );
}

async function enterToken(page: Page, token: string): Promise<void> {
  await page.fill("#token", token);
  await page.click("#token-form button[type=submit]");
}

describe("admin page in Chromium", () => {
  let node: Node;
  let browser: Browser;
  const clients: TestClient[] = [];
  const sources: SseClient[] = [];

  before(async () => {
    node = await startHerald({ adminToken: TOKEN, admin: { statsIntervalMs: 200 } });
    browser = await launchChromium();
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    for (const client of sources) {
      client.source.close();
    }
    await browser.close();
    await node.close();
  });

  test("page shows no data without the token", async () => {
    const page = await browser.newPage();
    await page.goto(`${node.http}/admin`);
    await waitForText(page, "#status", "Enter the admin token to see the nodes.");
    assert.equal(await page.isHidden("#data"), true);
    assert.equal(await page.locator("#data tbody tr").count(), 0);

    await enterToken(page, "not-the-token");
    await waitForText(page, "#status", "Not connected: The admin token is not valid.");
    assert.equal(await page.isHidden("#data"), true);
    assert.equal(await page.locator("#data tbody tr").count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("herald.adminToken")), "not-the-token");
    await page.close();
  });

  test("counts update live and the form publishes", async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const requested: string[] = [];
    page.on("request", (request) => requested.push(new URL(request.url()).pathname + new URL(request.url()).search));
    await page.goto(`${node.http}/admin`);
    await enterToken(page, TOKEN);
    await waitForText(page, "#status", "Live");
    assert.equal(await page.isVisible("#data"), true);
    await waitForText(page, `#nodes tr[data-node="${node.server.nodeId}"] td:nth-child(2)`, "running");

    // The live feed is the page's own SSE stream on the internal stats
    // channel, counted as an admin stream and not among the SSE clients.
    const feed = `/sse?channel=%24admin%3Astats&token=${TOKEN}`;
    assert.ok(requested.includes(feed), `the page requested ${JSON.stringify(requested)}`);
    assert.equal(sample(await scrape(node.http), "herald_connections", { transport: "admin" }), 1);

    clients.push(...(await subscribedClients(node, "page:ws", 10)));
    sources.push(...(await sseClients(node, "page:sse", 5)));

    await waitForText(page, '#transports tr[data-transport="websocket"] td.connections', "10");
    await waitForText(page, '#transports tr[data-transport="sse"] td.connections', "5");
    await waitForText(page, '#channels tr[data-channel="page:ws"] td.subscribers', "10");
    await waitForText(page, '#channels tr[data-channel="page:sse"] td.subscribers', "5");
    await waitForText(page, `#nodes tr[data-node="${node.server.nodeId}"] td:nth-child(3)`, "15");

    await page.fill("#publish-channel", "page:ws");
    await page.fill("#publish-data", '{"from": "admin page"}');
    await page.click("#publish-form button[type=submit]");
    await waitForText(page, "#publish-result", "Published on page:ws at offset 1.");
    const [event] = await clients[0]!.waitForPubs("page:ws", 1);
    assert.deepEqual(event.data, { from: "admin page" });
    await waitForText(page, '#latest tr[data-channel="page:ws"] td.data', '{"from":"admin page"}');

    await page.fill("#publish-channel", "page:sse");
    await page.fill("#publish-data", '{"to": "sse"}');
    await page.click("#publish-form button[type=submit]");
    await waitForText(page, "#publish-result", "Published on page:sse at offset 1.");
    for (const [i, client] of sources.entries()) {
      await waitUntil(() => client.received.length === 1, 5_000, `SSE client ${i} to receive the publication`);
      assert.deepEqual(client.received[0], { to: "sse" });
    }

    for (const client of sources.splice(0)) {
      client.source.close();
    }
    await waitForText(page, '#transports tr[data-transport="sse"] td.connections', "0");
    await waitForText(page, '#transports tr[data-transport="websocket"] td.connections', "10");
    await waitForText(page, `#nodes tr[data-node="${node.server.nodeId}"] td:nth-child(3)`, "10");
    assert.equal(await page.locator('#channels tr[data-channel="page:sse"]').count(), 0);
    assert.deepEqual(pageErrors, []);

    await page.click("#forget");
    await waitForText(page, "#status", "Enter the admin token to see the nodes.");
    assert.equal(await page.isHidden("#data"), true);
    assert.equal(await page.locator("#data tbody tr").count(), 0);
    assert.equal(await textOf(page, "#transports tbody"), "");
    await page.close();
  });

  test("invalid JSON is rejected by the form", async () => {
    const page = await browser.newPage();
    await page.goto(`${node.http}/admin`);
    await enterToken(page, TOKEN);
    await waitForText(page, "#status", "Live");
    await page.fill("#publish-channel", "page:ws");
    await page.fill("#publish-data", "{not json");
    await page.click("#publish-form button[type=submit]");
    await waitForText(page, "#publish-result", "The data is not valid JSON.");

    await page.fill("#publish-channel", "bad channel!");
    await page.fill("#publish-data", "1");
    await page.click("#publish-form button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#publish-result")?.textContent?.startsWith("Publish failed: Invalid channel name"), undefined, {
      timeout: 5_000,
    });
    await page.close();
  });
});
