#!/usr/bin/env node
// Runs Herald and its peers side by side and rewrites the result tables in
// docs/benchmarks.md. Servers run on core 0, the load client and this
// coordinator on core 1. `npm run bench -- --help` lists the options.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatTables } from "./lib/report.mjs";
import { buildHerald, pinToClientCore, ROOT } from "./lib/processes.mjs";
import { publishApi } from "./lib/publish-api.mjs";
import { fanout, fanoutSteps, idleMemory, manyChannels } from "./lib/scenarios.mjs";
import { reconnectStorm } from "./lib/reconnect-storm.mjs";
import {
  FANOUT_SERVERS,
  herald,
  heraldOnRedis,
  heraldPoll,
  heraldTwoNodes,
  naive,
  SERVERS,
  socketIo,
  SSE_SERVERS,
} from "./lib/servers.mjs";

const SCENARIOS = ["fanout", "sse", "poll", "steps", "idle", "idle-sse", "many", "redis", "storm", "workers", "idle-workers", "api"];
const FULL_ONLY = new Set(["steps", "idle-workers"]);

const USAGE = `Usage: npm run bench [-- OPTIONS]

Runs every scenario at short sizes (about 5 minutes), prints the tables
and rewrites the short-run results in docs/benchmarks.md.

Options:
  --full          the full sizes (about 30 minutes); rewrites the full-run
                  results instead
  --only NAME     one scenario, printed but not written: ${SCENARIOS.join(", ")}
                  (${[...FULL_ONLY].join(" and ")} run with --full only)
  --trials N      trials per server and scenario (default 3, full 5)
  --no-write      print the tables without touching docs/benchmarks.md
  --help          this text

Needs Linux with two cores or more, taskset, and redis-server for the
Redis scenarios. An interrupted run ends every process it started.`;

const args = process.argv.slice(2);
let options;
try {
  ({ values: options } = parseArgs({
    args,
    options: {
      full: { type: "boolean", default: false },
      "no-write": { type: "boolean", default: false },
      only: { type: "string" },
      trials: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (error) {
  usageError(error.message);
}
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}
const { full, only } = options;
// A run of one scenario would replace the whole results section with its one table, so it only prints.
const write = !options["no-write"] && only === undefined;
const trials = Number(options.trials ?? (full ? 5 : 3));
if (only !== undefined && !SCENARIOS.includes(only)) usageError(`unknown scenario ${only}`);
if (only !== undefined && FULL_ONLY.has(only) && !full) usageError(`${only} runs with --full only`);
if (!Number.isInteger(trials) || trials < 1) usageError("--trials needs a whole number of 1 or more");

function usageError(message) {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

pinToClientCore();

const fanoutCases = full
  ? [
      { subscribers: 2_000, rate: 20, seconds: 10 },
      { subscribers: 5_000, rate: 50, seconds: 10 },
    ]
  : [
      { subscribers: 2_000, rate: 20, seconds: 2 },
      { subscribers: 5_000, rate: 50, seconds: 2 },
    ];
const sseCases = full
  ? [
      { subscribers: 2_000, rate: 20, seconds: 10 },
      { subscribers: 5_000, rate: 50, seconds: 10 },
    ]
  : [{ subscribers: 2_000, rate: 20, seconds: 2 }];
const pollCase = { subscribers: 5_000, rate: 5, seconds: full ? 10 : 2 };
/** Full runs only: the rate raised step by step until a server falls behind. */
const stepCase = { subscribers: 10_000, rates: [5, 10, 15, 20, 25, 30, 40, 50, 60, 80], seconds: 5 };
/** One process can have at most about 20,000 open files here, so the single-process sizes stop below that. */
const idleCase = full ? { small: 2_000, large: 18_000 } : { small: 2_000, large: 10_000 };
const manyCase = full
  ? { connections: 10_000, shared: 10, rate: 1_000, seconds: 10 }
  : { connections: 2_000, shared: 10, rate: 500, seconds: 2 };

const apiCase = { seconds: full ? 10 : 2 };
/** One node on memory against two on Redis, with the same subscribers and publishes. */
const redisCase = full ? { subscribers: 5_000, rate: 50, seconds: 10 } : { subscribers: 2_000, rate: 50, seconds: 2 };
const stormCase = { clients: full ? 10_000 : 2_000, rate: 10 };
const workersCase = full ? { subscribers: 5_000, rate: 100, seconds: 10 } : { subscribers: 5_000, rate: 50, seconds: 2 };
/**
 * Full runs only: idle memory past one process's open-files limit, with
 * the server spread over workers and the client over several processes.
 */
const idleWorkersCases = [
  { protocol: "herald", small: 10_000, large: 50_000, workers: 3 },
  { protocol: "herald-sse", small: 4_000, large: 20_000, workers: 3 },
];

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
      if (Array.isArray(rows[0][key])) summary[key] = rows[0][key].map((_, i) => median(rows.map((row) => row[key][i])));
    }
    summary.failures = rows.reduce((sum, row) => sum + (row.failures ?? 0), 0);
    summary.sustained = rows.every((row) => row.sustained);
    return summary;
  });
}

function logResult(label) {
  return (round, result) => console.log(`${label} round ${round + 1} ${result.server}: ${JSON.stringify(result)}`);
}

async function main() {
  buildHerald();

  const started = Date.now();
  const loadBefore = loadavg()[0];
  const sections = {};
  if (!only || only === "fanout") {
    sections.fanout = [];
    for (const fanoutCase of fanoutCases) {
      const label = `fanout ${fanoutCase.subscribers}x${fanoutCase.rate}`;
      const results = await fanout(FANOUT_SERVERS, fanoutCase, trials, logResult(label));
      sections.fanout.push({ ...fanoutCase, rows: summarize(results) });
    }
  }
  if (!only || only === "sse") {
    sections.sse = [];
    for (const sseCase of sseCases) {
      const label = `sse ${sseCase.subscribers}x${sseCase.rate}`;
      const results = await fanout(SSE_SERVERS, sseCase, trials, logResult(label));
      sections.sse.push({ ...sseCase, rows: summarize(results) });
    }
  }
  if (!only || only === "poll") {
    // Herald only: none of the peers serves long-polling to this client.
    const results = await fanout([heraldPoll], pollCase, trials, logResult("poll"));
    sections.poll = { ...pollCase, rows: summarize(results) };
  }
  if (full && (!only || only === "steps")) {
    const results = await fanoutSteps(SERVERS, stepCase, logResult("steps"));
    sections.steps = { ...stepCase, results };
  }
  if (!only || only === "idle") {
    // Memory varies little between trials, so one is enough.
    sections.idle = { ...idleCase, rows: await idleMemory(SERVERS, idleCase) };
    for (const row of sections.idle.rows) console.log(`idle ${row.server}: ${JSON.stringify(row)}`);
  }
  if (!only || only === "idle-sse") {
    sections.idleSse = { ...idleCase, rows: await idleMemory(SSE_SERVERS, idleCase) };
    for (const row of sections.idleSse.rows) console.log(`idle-sse ${row.server}: ${JSON.stringify(row)}`);
  }
  if (!only || only === "many") {
    const results = await manyChannels(SERVERS, manyCase, trials, logResult("many"));
    sections.many = { ...manyCase, rows: summarize(results) };
  }
  if (!only || only === "redis") {
    const results = await fanout([herald, heraldTwoNodes], redisCase, trials, logResult("redis"));
    sections.redis = { ...redisCase, rows: summarize(results) };
  }
  if (!only || only === "storm") {
    // One run: each is a restart of its own.
    sections.storm = await reconnectStorm(stormCase);
    console.log(`storm: ${JSON.stringify(sections.storm)}`);
  }
  if (!only || only === "workers") {
    const results = await fanout([heraldOnRedis(1), heraldOnRedis(2)], workersCase, trials, logResult("workers"));
    sections.workers = { ...workersCase, rows: summarize(results) };
  }
  if (full && (!only || only === "idle-workers")) {
    sections.idleWorkers = [];
    for (const { protocol, workers, ...sizes } of idleWorkersCases) {
      const [row] = await idleMemory([heraldOnRedis(workers, protocol)], sizes);
      console.log(`idle-workers ${row.server}: ${JSON.stringify(row)}`);
      sections.idleWorkers.push({ ...sizes, workers, rows: [row] });
    }
  }
  if (!only || only === "api") {
    // One trial, because autocannon averages over the whole run.
    sections.api = { ...apiCase, rows: await publishApi([herald, heraldOnRedis(1), naive, socketIo], apiCase) };
    for (const row of sections.api.rows) console.log(`api ${row.server} ${row.endpoint}: ${JSON.stringify(row)}`);
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
    // Other jobs on the machine inflate CPU and latency figures; the load before the run shows whether there were any.
    loadBefore: loadBefore.toFixed(1),
  };
  const tables = formatTables(sections, machine);
  console.log(tables);
  if (write) {
    const path = join(ROOT, "docs/benchmarks.md");
    // The short and the full run each keep their own section of the page.
    const marker = full ? "bench:full" : "bench:results";
    const START = `<!-- ${marker}:start -->`;
    const END = `<!-- ${marker}:end -->`;
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
