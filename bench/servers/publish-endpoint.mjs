// The publish endpoint every peer server shares with the harness:
// POST /publish with {"channel", "data"} returns {"seq"}, the channel's
// sequence number given to that publication.

/** Handles POST /publish; returns false for any other request. */
export function handlePublish(req, res, publish) {
  if (req.method !== "POST" || req.url !== "/publish") return false;
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const { channel, data } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const seq = publish(channel, data);
    const body = JSON.stringify({ seq });
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
  return true;
}

/** Port from `--port N`, 0 when absent. */
export function portArgument() {
  const index = process.argv.indexOf("--port");
  return index === -1 ? 0 : Number(process.argv[index + 1]);
}

/**
 * Prints the bound port on the line the harness waits for, and makes
 * SIGTERM a normal exit, so that `node --cpu-prof` writes its profile.
 */
export function announce(server) {
  process.once("SIGTERM", () => process.exit(0));
  process.stdout.write(`listening ${server.address().port}\n`);
}
