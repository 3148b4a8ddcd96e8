#!/usr/bin/env node
// Builds the project, then runs every test file with Node's test runner.
// Unit tests sit beside their source (src/**/*.test.ts); tests that start
// real servers, Redis, nginx or a browser live under test/.
// Usage: npm test [-- FILE_OR_PATTERN ...]
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules" || name === "dist") continue;
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.ts")) found.push(path);
  }
  return found;
}

const build = spawnSync("npx", ["tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
if (build.status !== 0) {
  process.exit(build.status ?? 1);
}

const filters = process.argv.slice(2);
const all = [...findTests("src"), ...findTests("test")].sort();
const files = filters.length === 0 ? all : all.filter((file) => filters.some((filter) => file.includes(filter)));
if (files.length === 0) {
  console.error(`No test file matches ${filters.join(" ")}`);
  process.exit(1);
}

const concurrency = process.env.HERALD_TEST_CONCURRENCY ?? "2";
const run = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", ...files],
  { stdio: "inherit" },
);
process.exit(run.status ?? 1);
