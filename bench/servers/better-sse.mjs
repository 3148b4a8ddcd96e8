// The better-sse peer: GET /sse?channel=… opens a session registered with
// one better-sse channel per name; a `subscribed` event {"ack", "seq"}
// acknowledges each, and publications are broadcast as {"seq", "data"}.
import { createServer } from "node:http";
import { createChannel, createSession } from "better-sse";
import { announce, handlePublish, portArgument } from "./publish-endpoint.mjs";

/** Channel name to its sequence and better-sse channel. */
const channels = new Map();

function channelOf(name) {
  let channel = channels.get(name);
  if (!channel) {
    channel = { seq: 0, sse: createChannel() };
    channels.set(name, channel);
  }
  return channel;
}

function publish(name, data) {
  const channel = channelOf(name);
  channel.seq++;
  channel.sse.broadcast({ seq: channel.seq, data });
  return channel.seq;
}

const server = createServer(async (req, res) => {
  if (handlePublish(req, res, publish)) return;
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/sse") {
    res.writeHead(404).end();
    return;
  }
  const session = await createSession(req, res);
  url.searchParams.getAll("channel").forEach((name, slot) => {
    const channel = channelOf(name);
    channel.sse.register(session);
    session.push({ ack: slot, seq: channel.seq }, "subscribed");
  });
});

server.listen(portArgument(), "127.0.0.1", () => announce(server));
