#!/usr/bin/env node
// Bundles the client SDK for browsers: dist/client/herald.min.js, an IIFE
// that exposes the SDK as the global `Herald`. Prints the minified and
// gzipped sizes, which docs/client.md quotes.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist/client/herald.min.js");

await build({
  entryPoints: [join(root, "src/client/index.ts")],
  outfile,
  bundle: true,
  minify: true,
  format: "iife",
  globalName: "Herald",
  platform: "browser",
  target: "es2020",
  sourcemap: true,
  logLevel: "warning",
});

const bytes = readFileSync(outfile);
console.log(`dist/client/herald.min.js: ${bytes.length} bytes minified, ${gzipSync(bytes, { level: 9 }).length} bytes gzipped`);
