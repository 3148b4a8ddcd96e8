import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { startHerald } from "./support/herald.js";

type Node = Awaited<ReturnType<typeof startHerald>>;

const CHAT = { namespaces: { chat: { clientPublish: true } } };

/** Returns whether the node serves SSE; SSE cases run only where it does. */
async function servesSse(node: Node): Promise<boolean> {
  const controller = new AbortController();
  const response = await fetch(`${node.http}/sse?channel=probe`, { signal: controller.signal });
  controller.abort();
  return response.status !== 404;
}

/** Opens the demo page and waits until its room subscription has a position. */
async function openDemo(browser: Browser, node: Node, options: { transport: string; name: string; room: string }): Promise<Page> {
  const page = await browser.newPage();
  const query = new URLSearchParams(options);
  await page.goto(`${node.http}/demo?${query}`);
  await waitForJoin(page);
  return page;
}

async function waitForJoin(page: Page): Promise<void> {
  await page.waitForFunction(
    () => {
      const demo = (window as any).heraldDemo;
      return demo.client?.state === "connected" && demo.client.position(demo.room) !== undefined;
    },
    undefined,
    { timeout: 15_000 },
  );
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

async function waitForLine(page: Page, kind: "message" | "gap", text: string): Promise<void> {
  await page.waitForFunction(
    ([kind, text]) => [...document.querySelectorAll(`#messages li[data-kind="${kind}"]`)].some((item) => item.textContent?.includes(text)),
    [kind, text] as const,
    { timeout: 15_000 },
  );
}

describe("demo page in Chromium", () => {
  let browser: Browser;

  before(async () => {
    const build = spawnSync(process.execPath, ["scripts/build-client.mjs"], { encoding: "utf8" });
    assert.equal(build.status, 0, build.stderr);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  test("two pages chat on every transport", async (t) => {
    const node = await startHerald(CHAT);
    try {
      const transports = ["websocket", "poll"];
      if (await servesSse(node)) {
        transports.push("sse");
      } else {
        t.diagnostic("this node has no SSE transport; SSE pages were not tested");
      }
      for (const transport of transports) {
        const room = `chat:${transport}`;
        const alice = await openDemo(browser, node, { transport, name: "alice", room });
        const bob = await openDemo(browser, node, { transport, name: "bob", room });
        assert.equal(await alice.textContent("#transport"), transport);
        assert.equal(await bob.textContent("#transport"), transport);

        await send(alice, `hello over ${transport}`);
        await waitForLine(bob, "message", `alice: hello over ${transport}`);
        await send(bob, `hi back over ${transport}`);
        await waitForLine(alice, "message", `bob: hi back over ${transport}`);
        await waitForLine(alice, "message", `alice: hello over ${transport}`);
        await alice.close();
        await bob.close();
      }
    } finally {
      await node.close();
    }
  });

  test("pages on different transports chat", async () => {
    const node = await startHerald(CHAT);
    try {
      const room = "chat:mixed";
      const alice = await openDemo(browser, node, { transport: "websocket", name: "alice", room });
      const bob = await openDemo(browser, node, { transport: "poll", name: "bob", room });
      await send(alice, "from a WebSocket");
      await waitForLine(bob, "message", "alice: from a WebSocket");
      await send(bob, "from long-polling");
      await waitForLine(alice, "message", "bob: from long-polling");
      await alice.close();
      await bob.close();
    } finally {
      await node.close();
    }
  });

  test("refused WebSocket falls back and survives a restart", async () => {
    const settings = { ...CHAT, websocket: { enabled: false } };
    let node = await startHerald(settings);
    const port = node.port;
    try {
      const expected = (await servesSse(node)) ? "sse" : "poll";
      const room = "chat:fallback";
      const page = await openDemo(browser, node, { transport: "auto", name: "carol", room });
      assert.equal(await page.textContent("#transport"), expected);
      await send(page, "before the restart");
      await waitForLine(page, "message", "carol: before the restart");

      await node.close();
      node = await startHerald({ ...settings, port });
      // The memory broker starts a new epoch, so the page's resume must report a gap.
      await page.waitForSelector('#messages li[data-kind="gap"]', { timeout: 20_000 });
      await waitForJoin(page);
      assert.equal(await page.textContent("#transport"), expected);
      await send(page, "after the restart");
      await waitForLine(page, "message", "carol: after the restart");
      await page.close();
    } finally {
      await node.close();
    }
  });
});
