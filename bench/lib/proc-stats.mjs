// Reads a process's CPU time and resident memory from /proc (Linux only).
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every mainstream Linux build.

/** User plus system CPU time of a process, in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) may contain spaces, so count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / TICKS_PER_SECOND;
}

/** A process and its descendants (such as the workers of `--workers`), read from /proc. */
export function processTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${pids[i]}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${pids[i]}/task/${task}/children`, "latin1").trim();
        if (children) pids.push(...children.split(" ").map(Number));
      } catch {
        // The task ended while being read.
      }
    }
  }
  return pids;
}

/** CPU seconds summed over a process and its descendants. */
export function treeCpuSeconds(pid) {
  return processTree(pid).reduce((sum, each) => sum + cpuSeconds(each), 0);
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Resident set size summed over a process and its descendants, in bytes. */
export function treeRssBytes(pid) {
  return processTree(pid).reduce((sum, each) => sum + rssBytes(each), 0);
}

/** Microseconds on the monotonic clock, comparable between processes of one machine. */
export function monotonicMicros() {
  return Number(process.hrtime.bigint() / 1000n);
}
