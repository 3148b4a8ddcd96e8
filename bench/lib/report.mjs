// Markdown tables for docs/benchmarks.md, written by bench/run.mjs.

const number = (value, digits = 0) =>
  Number.isFinite(value) ? value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "–";

function table(header, rows) {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

/** Herald's value over a peer's, as "1.23x". */
function ratio(herald, peer) {
  return Number.isFinite(herald) && Number.isFinite(peer) && peer !== 0 ? `${(herald / peer).toFixed(2)}x` : "–";
}

function deliveryTable(rows) {
  const herald = rows.find((row) => row.server.startsWith("herald"));
  return table(
    [
      "server",
      "deliveries/s",
      "Herald's deliveries/s ÷ this",
      "server CPU-s per million",
      "this ÷ Herald's CPU",
      "p50 ms",
      "p99 ms",
      "p99.9 ms",
      "kept up",
      "failures",
      "client CPU-s per million",
    ],
    rows.map((row) => [
      row.server,
      number(row.deliveriesPerSecond),
      row === herald ? "" : ratio(herald?.deliveriesPerSecond, row.deliveriesPerSecond),
      number(row.serverCpuPerMillion, 2),
      row === herald ? "" : ratio(row.serverCpuPerMillion, herald?.serverCpuPerMillion),
      number(row.p50, 2),
      number(row.p99, 2),
      number(row.p999, 2),
      row.sustained ? "yes" : "no",
      number(row.failures),
      number(row.clientCpuPerMillion, 2),
    ]),
  );
}

/** Checks this run's figures against Herald's targets; each line names the figures it compared. */
function targetLines(sections) {
  const lines = [];
  const check = (ok, text) => lines.push(`| ${text} | ${ok === undefined ? "not measured" : ok ? "met" : "not met"} |`);
  const row = (rows, server) => rows?.find((candidate) => candidate.server === server);
  const small = sections.fanout?.find((entry) => entry.subscribers === 2_000);
  const large = sections.fanout?.find((entry) => entry.subscribers === 5_000);

  const herald = row(small?.rows, "herald");
  const naive = row(small?.rows, "ws (naive loop)");
  if (herald && naive) {
    check(
      herald.serverCpuPerMillion <= naive.serverCpuPerMillion,
      `2,000 × 20: Herald's CPU per million deliveries (${number(herald.serverCpuPerMillion, 2)} s) at most the naive ws loop's (${number(naive.serverCpuPerMillion, 2)} s)`,
    );
    check(herald.p99 < 50, `2,000 × 20: Herald's p99 latency (${number(herald.p99, 1)} ms) under 50 ms`);
  }
  const heraldPeak = row(large?.rows, "herald");
  const naivePeak = row(large?.rows, "ws (naive loop)");
  const socketIoPeak = row(large?.rows, "socket.io");
  if (heraldPeak && naivePeak && socketIoPeak) {
    check(
      heraldPeak.deliveriesPerSecond >= naivePeak.deliveriesPerSecond,
      `5,000 × 50: Herald's deliveries/s (${number(heraldPeak.deliveriesPerSecond)}) at least the naive ws loop's (${number(naivePeak.deliveriesPerSecond)})`,
    );
    check(
      heraldPeak.deliveriesPerSecond >= 1.6 * socketIoPeak.deliveriesPerSecond,
      `5,000 × 50: Herald's deliveries/s at least 1.6 × Socket.IO's (${number(socketIoPeak.deliveriesPerSecond)}); ratio ${(heraldPeak.deliveriesPerSecond / socketIoPeak.deliveriesPerSecond).toFixed(2)}`,
    );
    check(
      heraldPeak.serverCpuPerMillion <= 0.5 * socketIoPeak.serverCpuPerMillion,
      `5,000 × 50: Herald's CPU per million (${number(heraldPeak.serverCpuPerMillion, 2)} s) at most 0.5 × Socket.IO's (${number(socketIoPeak.serverCpuPerMillion, 2)} s); ratio ${(heraldPeak.serverCpuPerMillion / socketIoPeak.serverCpuPerMillion).toFixed(2)}`,
    );
  }
  const redis = sections.redis && redisRatios(sections.redis.rows);
  if (redis) {
    check(
      redis.perCpu >= 0.7,
      `Two nodes on Redis: per-node deliveries per CPU-second ÷ the memory node's (${number(redis.memory.serverCpuPerMillion, 2)} ÷ ${number(redis.costliest, 2)} s per million) at least 0.7; ratio ${redis.perCpu.toFixed(2)}`,
    );
  }
  const storm = sections.storm;
  if (storm) {
    check(
      storm.missed === 0 && storm.duplicated === 0 && storm.notRecovered === 0 && Number.isFinite(storm.caughtUpSeconds),
      `Reconnect storm: ${number(storm.clients)} clients resumed with no missed or duplicated offset (${number(storm.missed)} missed, ${number(storm.duplicated)} duplicated)`,
    );
  }
  const idle = row(sections.idle?.rows, "herald");
  if (idle) {
    check(idle.bytesPerConnection <= 8 * 1024, `Idle: Herald's RSS per WebSocket connection (${number(idle.bytesPerConnection / 1024, 2)} KiB) at most 8 KiB`);
  }
  return lines.length === 0 ? undefined : `### Targets in this run\n\n| target | result |\n| --- | --- |\n${lines.join("\n")}`;
}

/** Deliveries table for servers compared with the first row, with CPU per node and Redis's CPU. */
function nodesTable(rows) {
  const base = rows[0];
  return table(
    [
      "server",
      "deliveries/s",
      `this ÷ ${base.server}`,
      "server CPU-s per million, each node",
      "Redis CPU-s per million",
      "p50 ms",
      "p99 ms",
      "kept up",
      "failures",
    ],
    rows.map((row) => [
      row.server,
      number(row.deliveriesPerSecond),
      row === base ? "" : ratio(row.deliveriesPerSecond, base.deliveriesPerSecond),
      (row.nodeCpuPerMillion ?? [row.serverCpuPerMillion]).map((cpu) => number(cpu, 2)).join(" / "),
      number(row.redisCpuPerMillion, 2),
      number(row.p50, 2),
      number(row.p99, 2),
      row.sustained ? "yes" : "no",
      number(row.failures),
    ]),
  );
}

/**
 * Compares two nodes on Redis with one on memory. The nodes share the
 * server core, so the pair's deliveries per second are what one core's
 * worth of Redis nodes delivers. Deliveries per CPU-second are each
 * node's own.
 */
function redisRatios(rows) {
  const memory = rows.find((row) => !Number.isFinite(row.redisCpuPerMillion));
  const pair = rows.find((row) => row.nodeCpuPerMillion?.length > 1);
  if (!memory || !pair) return undefined;
  const costliest = Math.max(...pair.nodeCpuPerMillion);
  return {
    throughput: pair.deliveriesPerSecond / memory.deliveriesPerSecond,
    perCpu: memory.serverCpuPerMillion / costliest,
    memory,
    pair,
    costliest,
  };
}

/** RSS at two sizes and the growth per connection, one row per server. */
function idleTable(title, unit, { small, large, rows }, withProcesses = false) {
  return (
    `### ${title}: RSS growth from ${number(small)} to ${number(large)} ${unit}\n\n` +
    table(
      ["server", ...(withProcesses ? ["processes"] : []), `RSS at ${number(small)} (MiB)`, `RSS at ${number(large)} (MiB)`, "KiB per connection"],
      rows.map((row) => [
        row.server,
        ...(withProcesses ? [number(row.processes)] : []),
        number(row.rssSmall / 2 ** 20, 1),
        number(row.rssLarge / 2 ** 20, 1),
        number(row.bytesPerConnection / 1024, 2),
      ]),
    )
  );
}

export function formatTables(sections, machine) {
  const parts = [
    `Taken ${machine.date} with \`${machine.command}\` (${machine.minutes} min) on ${machine.cores} cores ` +
      `(${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}. Each figure is the median of ` +
      `${machine.trials} trials; servers alternate within each round. The 1-minute load average before ` +
      `the run was ${machine.loadBefore}; other jobs on the machine make absolute numbers noisy, so compare ` +
      "servers within one table.",
  ];

  const targets = targetLines(sections);
  if (targets) parts.push(targets);

  for (const fanout of sections.fanout ?? []) {
    parts.push(
      `### Fan-out: ${number(fanout.subscribers)} subscribers, ${fanout.rate} publishes/s, ${fanout.seconds} s\n\n` +
        deliveryTable(fanout.rows),
    );
  }

  for (const sse of sections.sse ?? []) {
    parts.push(
      `### SSE fan-out: ${number(sse.subscribers)} subscribers, ${sse.rate} publishes/s, ${sse.seconds} s\n\n` +
        deliveryTable(sse.rows),
    );
  }

  if (sections.poll) {
    const poll = sections.poll;
    parts.push(
      `### Long-polling fan-out: ${number(poll.subscribers)} clients, ${poll.rate} publishes/s, ${poll.seconds} s\n\n` +
        deliveryTable(poll.rows),
    );
  }

  if (sections.steps) {
    const { subscribers, seconds, results } = sections.steps;
    const servers = [...new Set(results.map((result) => result.server))];
    const rows = servers.map((server) => {
      const mine = results.filter((result) => result.server === server);
      const kept = mine.filter((result) => result.sustained);
      const peak = kept.reduce((best, result) => (result.deliveriesPerSecond > (best?.deliveriesPerSecond ?? 0) ? result : best), undefined);
      const half = peak
        ? mine.reduce((best, result) =>
            Math.abs(result.deliveriesPerSecond - peak.deliveriesPerSecond / 2) <
            Math.abs(best.deliveriesPerSecond - peak.deliveriesPerSecond / 2)
              ? result
              : best,
          )
        : undefined;
      const fastest = mine.reduce((best, result) => (result.deliveriesPerSecond > best.deliveriesPerSecond ? result : best));
      return [
        server,
        peak ? `${number(peak.deliveriesPerSecond)} (${peak.rate}/s)` : "–",
        `${number(fastest.deliveriesPerSecond)} (${fastest.rate}/s)`,
        half ? `${number(half.p50, 2)} / ${number(half.p99, 2)} / ${number(half.p999, 2)} (${half.rate}/s)` : "–",
        number(mine.reduce((sum, result) => sum + result.failures, 0)),
      ];
    });
    parts.push(
      `### Fan-out steps: ${number(subscribers)} subscribers, publish rate raised step by step, ${seconds} s a step\n\n` +
        table(
          ["server", "highest kept-up deliveries/s (rate)", "highest deliveries/s at any step (rate)", "p50 / p99 / p99.9 ms at the step nearest half the kept-up peak", "failures"],
          rows,
        ),
    );
  }

  if (sections.redis) {
    const redis = sections.redis;
    const ratios = redisRatios(redis.rows);
    parts.push(
      `### Two nodes on Redis: ${number(redis.subscribers)} subscribers split evenly over the nodes, ${redis.rate} publishes/s through the first, ${redis.seconds} s\n\n` +
        nodesTable(redis.rows) +
        "\n\nBoth nodes, and the `redis-server` this scenario starts on a free loopback port, run on the server core " +
        "(`taskset -c 0`), next to one another. The pair's deliveries per second are therefore what one core's worth " +
        "of Redis-broker nodes delivers, and each node's CPU-seconds per million count its own share (half) of the " +
        "deliveries; the first node also takes the publishes." +
        (ratios
          ? ` Per-node deliveries on Redis ÷ deliveries on memory, per CPU-second of the costlier node: ` +
            `**${ratios.perCpu.toFixed(2)}** (target: at least 0.7); deliveries per second of the pair ÷ the memory ` +
            `node's: ${ratios.throughput.toFixed(2)}.`
          : ""),
    );
  }

  if (sections.storm) {
    const storm = sections.storm;
    parts.push(
      `### Reconnect storm: ${number(storm.clients)} clients restart with their node, ${storm.rate} publishes/s throughout\n\n` +
        table(
          [
            "clients",
            "node exited (s)",
            "listening again (s)",
            "all resumed (s)",
            "all caught up (s)",
            "reconnects",
            "missed offsets",
            "duplicated offsets",
            "not recovered",
            "other failures",
          ],
          [
            [
              number(storm.clients),
              number(storm.stopSeconds, 2),
              number(storm.restartSeconds, 2),
              number(storm.resumedSeconds, 2),
              number(storm.caughtUpSeconds, 2),
              number(storm.disconnects),
              number(storm.missed),
              number(storm.duplicated),
              number(storm.notRecovered),
              number(storm.unexpected),
            ],
          ],
        ) +
        "\n\nTwo nodes on one `redis-server` (all three on the server core); every client is on the second node, and " +
        "publishes go through the first, so they continue while the second restarts. Times count from the `SIGTERM` " +
        "to the second node: until it exited after draining, until a new process listened on the same port, until " +
        "every client had reconnected and resubscribed with `since` (its last epoch and offset) and been told the " +
        "missed events were recovered, and until every client had received the offset last published at that moment. " +
        "A client reconnects after a random 0–250 ms, abandons an attempt without a handshake reply after 10 s (the SDK's default connect timeout), and " +
        "retries every 250–500 ms. The nodes keep 1,000 events of history per channel (the default of 100 lasts " +
        `${number(100 / storm.rate)} s at ${storm.rate} publishes/s), so that the table measures how long resuming takes ` +
        "rather than the history bound. One run.",
    );
  }

  if (sections.workers) {
    const workers = sections.workers;
    parts.push(
      `### Workers: ${number(workers.subscribers)} subscribers, ${workers.rate} publishes/s, ${workers.seconds} s, on Redis\n\n` +
        nodesTable(workers.rows) +
        "\n\nEach server has a `redis-server` of its own. Server CPU counts the primary and every worker. All of " +
        "them, and Redis, are pinned to the server core, because the load client needs the other of this machine's " +
        "two cores. With `--workers 2` the two workers therefore take turns on one core: this table shows what the " +
        "split costs (the primary handing out connections, each publication crossing Redis to a second process, two " +
        "event loops instead of one), not what a second core gains. It cannot show scaling; that needs a machine " +
        "with more cores than the load client uses." +
        (workers.rows.every((row) => row.sustained)
          ? " Every server kept up with this rate, so deliveries per second here are the offered load, not a peak."
          : ""),
    );
  }

  if (sections.idle) {
    parts.push(idleTable("Idle memory", "connections, one subscription each", sections.idle));
  }

  if (sections.idleSse) {
    parts.push(idleTable("Idle SSE memory", "streams, one channel each", sections.idleSse));
  }

  for (const idle of sections.idleWorkers ?? []) {
    const [row] = idle.rows;
    const unit = row.server.includes("SSE") ? "SSE streams" : "WebSocket connections";
    parts.push(idleTable(`Idle memory over ${idle.workers} workers`, unit, idle, true));
  }
  if (sections.idleWorkers?.length) {
    parts.push(
      "One process may hold about 20,000 open files here, so for these tables the server runs as `--workers " +
        `${sections.idleWorkers[0].workers}\` on Redis (the primary hands connections out round robin) and the load client ` +
        "as processes of at most 8,000 connections each. RSS is summed over the primary and its workers; the growth " +
        "between the two sizes, divided by the connections added, is the cost of one connection.",
    );
  }

  if (sections.many) {
    const many = sections.many;
    parts.push(
      `### Many channels: ${number(many.connections)} connections, each on its own channel and one of ` +
        `${many.shared} shared channels; ${number(many.rate)} publishes/s round-robin over all, ${many.seconds} s\n\n` +
        deliveryTable(many.rows),
    );
  }
  if (sections.api) {
    parts.push(
      `### Publish API: autocannon, 10 connections, ${sections.api.seconds} s per endpoint, no subscribers\n\n` +
        table(
          ["server", "endpoint", "requests/s", "publishes/s", "p50 ms", "p99 ms", "errors", "server CPU-s per million publishes", "Redis CPU-s per million publishes"],
          sections.api.rows.map((row) => [
            row.server,
            `\`${row.endpoint}\``,
            number(row.requestsPerSecond),
            number(row.publishesPerSecond),
            number(row.p50, 1),
            number(row.p99, 1),
            number(row.errors),
            number(row.serverCpuPerMillion, 1),
            number(row.redisCpuPerMillion, 1),
          ]),
        ),
    );
  }
  return parts.join("\n\n");
}
