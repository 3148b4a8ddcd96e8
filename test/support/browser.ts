import { chromium, type Browser } from "playwright-core";

/**
 * Launches Debian's Chromium headless. The background-networking flags
 * keep it from reaching for outside hosts, which this machine refuses.
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.HERALD_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}
