#!/usr/bin/env node
// Runs Herald and its peers side by side and rewrites the result tables in
// docs/benchmarks.md. Usage: npm run bench [-- --full] [-- --only NAME]
// [-- --trials N] [-- --no-write]. Servers run on core 0, the load client
// and this coordinator on core 1.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { formatTables } from "./lib/report.mjs";
import { ROOT } from "./lib/processes.mjs";
import { fanoutTrial, idleMemoryTrial, manyChannelsTrial } from "./lib/scenarios.mjs";

if (process.env.BENCH_COORDINATOR_PINNED !== "1") {
  const pinned = spawnSync("taskset", ["-c", "1", process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, BENCH_COORDINATOR_PINNED: "1" },
  });
  process.exit(pinned.status ?? 1);
}

const args = process.argv.slice(2);
const full = args.includes("--full");
const write = !args.includes("--no-write");
const only = valueOf("--only");
const trials = Number(valueOf("--trials") ?? (full ? 5 : 3));

function valueOf(flag) {
  const index = args.indexOf(flag);
  return index === -1 ? undefined : args[index + 1];
}

const herald = {
  name: "herald",
  protocol: "herald",
  publishPath: "/api/publish",
  args: (port) => ["bin/herald.js", "serve", "--port", String(port), "--host", "127.0.0.1", "--log-level", "warn"],
};
const naive = {
  name: "ws (naive loop)",
  protocol: "ws-naive",
  publishPath: "/publish",
  args: (port) => ["bench/servers/ws-naive.mjs", "--port", String(port)],
};
const socketIo = {
  name: "socket.io",
  protocol: "socket.io",
  publishPath: "/publish",
  args: (port) => ["bench/servers/socketio.mjs", "--port", String(port)],
};
const socketIoRecovery = {
  name: "socket.io + recovery",
  protocol: "socket.io",
  publishPath: "/publish",
  args: (port) => ["bench/servers/socketio.mjs", "--port", String(port), "--recovery"],
};
const SERVERS = [herald, naive, socketIo, socketIoRecovery];

const fanoutCases = full
  ? [
      { subscribers: 2_000, rate: 20, seconds: 10 },
      ...[20, 30, 40, 50, 60, 80].map((rate) => ({ subscribers: 5_000, rate, seconds: 10, step: true })),
    ]
  : [
      { subscribers: 2_000, rate: 20, seconds: 3 },
      { subscribers: 5_000, rate: 50, seconds: 3 },
    ];
const idleCase = full ? { small: 2_000, large: 18_000 } : { small: 2_000, large: 10_000 };
const manyCase = full
  ? { connections: 10_000, shared: 10, rate: 1_000, seconds: 10 }
  : { connections: 2_000, shared: 10, rate: 500, seconds: 3 };

function median(values) {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Per server, the median of every numeric field over the trials, plus summed failures. */
function summarize(results) {
  const byServer = new Map();
  for (const result of results) {
    if (!byServer.has(result.server)) byServer.set(result.server, []);
    byServer.get(result.server).push(result);
  }
  return [...byServer.entries()].map(([server, rows]) => {
    const summary = { server, trials: rows.length };
    for (const key of Object.keys(rows[0])) {
      if (typeof rows[0][key] === "number") summary[key] = median(rows.map((row) => row[key]));
    }
    summary.failures = rows.reduce((sum, row) => sum + (row.failures ?? 0), 0);
    summary.sustained = rows.every((row) => row.sustained);
    return summary;
  });
}

/** Runs `trial` for every server, `trials` times, rotating the order each round. */
async function alternate(label, trial) {
  const results = [];
  for (let round = 0; round < trials; round++) {
    const order = SERVERS.map((_, i) => SERVERS[(i + round) % SERVERS.length]);
    for (const spec of order) {
      const result = await trial(spec);
      console.log(`${label} round ${round + 1} ${spec.name}: ${JSON.stringify(result)}`);
      results.push(result);
    }
  }
  return summarize(results);
}

async function main() {
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new Error("build failed");

  const started = Date.now();
  const sections = {};
  if (!only || only === "fanout") {
    sections.fanout = [];
    for (const fanoutCase of fanoutCases) {
      const rows = await alternate(`fanout ${fanoutCase.subscribers}x${fanoutCase.rate}`, (spec) =>
        fanoutTrial(spec, fanoutCase),
      );
      sections.fanout.push({ ...fanoutCase, rows });
    }
  }
  if (!only || only === "idle") {
    sections.idle = { ...idleCase, rows: await alternate("idle", (spec) => idleMemoryTrial(spec, idleCase)) };
  }
  if (!only || only === "many") {
    sections.many = { ...manyCase, rows: await alternate("many", (spec) => manyChannelsTrial(spec, manyCase)) };
  }

  const machine = {
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    command: `npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}`,
    trials,
    minutes: ((Date.now() - started) / 60_000).toFixed(1),
  };
  const tables = formatTables(sections, machine);
  console.log(tables);
  if (write) {
    const path = join(ROOT, "docs/benchmarks.md");
    const START = "<!-- bench:results:start -->";
    const END = "<!-- bench:results:end -->";
    const text = existsSync(path) ? readFileSync(path, "utf8") : `${START}\n${END}\n`;
    const from = text.indexOf(START);
    const to = text.indexOf(END);
    if (from === -1 || to === -1) throw new Error(`${path} lacks the ${START} and ${END} markers`);
    writeFileSync(path, `${text.slice(0, from + START.length)}\n${tables}\n${text.slice(to)}`);
    console.log(`wrote ${path}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
