#!/usr/bin/env node
// Runs one fan-out or many-channels trial with the server under
// `node --cpu-prof`, then prints the functions with the most self time.
// Usage: node bench/profile.mjs [herald|ws-naive|socket.io] [fanout|many]
//        [subscribers] [rate] [seconds]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildHerald, pinToClientCore, ROOT } from "./lib/processes.mjs";
import { fanout, manyChannels } from "./lib/scenarios.mjs";
import { SERVERS } from "./lib/servers.mjs";

pinToClientCore();

const [name = "herald", scenario = "fanout", subscribers = "5000", rate = "50", seconds = "5"] = process.argv.slice(2);
const spec = SERVERS.find((server) => server.protocol === name && !server.name.includes("recovery"));
if (!spec) throw new Error(`unknown server ${name}; use herald, ws-naive or socket.io`);

buildHerald();

const directory = mkdtempSync(join(tmpdir(), "herald-profile-"));
const profiled = { ...spec, nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${directory}`] };
const [result] =
  scenario === "many"
    ? await manyChannels([profiled], { connections: Number(subscribers), shared: 10, rate: Number(rate), seconds: Number(seconds) }, 1)
    : await fanout([profiled], { subscribers: Number(subscribers), rate: Number(rate), seconds: Number(seconds) }, 1);
console.log(JSON.stringify(result));

const file = readdirSync(directory).find((entry) => entry.endsWith(".cpuprofile"));
if (!file) throw new Error(`no profile written in ${directory}`);
const profile = JSON.parse(readFileSync(join(directory, file), "utf8"));
rmSync(directory, { recursive: true, force: true });

// Self time per function: the sampled node ids, weighted by the time deltas.
const selfMicros = new Map();
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
profile.samples.forEach((id, i) => {
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const totals = new Map();
let total = 0;
for (const [id, micros] of selfMicros) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  const where = url ? `${url.replace(`file://${ROOT}`, "").replace(/.*node_modules\//, "")}:${lineNumber + 1}` : "";
  const key = `${functionName || "(anonymous)"} ${where}`.trim();
  totals.set(key, (totals.get(key) ?? 0) + micros);
  total += micros;
}
const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
console.log("| self % | function |\n| ---: | --- |");
for (const [key, micros] of top) {
  console.log(`| ${((micros / total) * 100).toFixed(1)} | \`${key}\` |`);
}
