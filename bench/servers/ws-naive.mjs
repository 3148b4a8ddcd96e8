// The naive `ws` peer: one JSON text per publication, then a loop over the
// channel's clients calling send(). Messages: client {"sub", "id"}, reply
// {"id", "seq"}; pushes {"seq", "data"} with seq counted per channel.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";
import { announce, handlePublish, portArgument } from "./publish-endpoint.mjs";

/** Channel name to its sequence and clients. */
const channels = new Map();

function channelOf(name) {
  let channel = channels.get(name);
  if (!channel) {
    channel = { seq: 0, clients: new Set() };
    channels.set(name, channel);
  }
  return channel;
}

function publish(name, data) {
  const channel = channelOf(name);
  channel.seq++;
  const text = JSON.stringify({ seq: channel.seq, data });
  for (const client of channel.clients) client.send(text);
  return channel.seq;
}

const server = createServer((req, res) => {
  if (!handlePublish(req, res, publish)) {
    res.writeHead(404).end();
  }
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });

wss.on("connection", (ws) => {
  const joined = [];
  ws.on("message", (raw) => {
    const { sub, id } = JSON.parse(raw.toString());
    const channel = channelOf(sub);
    channel.clients.add(ws);
    joined.push(channel);
    ws.send(JSON.stringify({ id, seq: channel.seq }));
  });
  ws.on("close", () => {
    for (const channel of joined) channel.clients.delete(ws);
  });
});

server.listen(portArgument(), "127.0.0.1", () => announce(server));
