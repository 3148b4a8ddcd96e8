// The Socket.IO 4 peer: rooms, websocket transport only, no
// per-message deflate, string payloads. `--recovery` turns on
// connectionStateRecovery. Events: client "sub"(channel, slot), server
// "subscribed"(slot, seq); pushes "pub"(JSON text {"seq", "data"}).
import { createServer } from "node:http";
import { Server } from "socket.io";
import { announce, handlePublish, portArgument } from "./publish-endpoint.mjs";

const recovery = process.argv.includes("--recovery");
/** Room name to its sequence number. */
const sequences = new Map();

const server = createServer((req, res) => {
  if (!handlePublish(req, res, publish)) {
    res.writeHead(404).end();
  }
});
const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
  ...(recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 120_000 } } : {}),
});

function publish(room, data) {
  const seq = (sequences.get(room) ?? 0) + 1;
  sequences.set(room, seq);
  io.to(room).emit("pub", JSON.stringify({ seq, data }));
  return seq;
}

io.on("connection", (socket) => {
  socket.on("sub", (room, slot) => {
    socket.join(room);
    socket.emit("subscribed", slot, sequences.get(room) ?? 0);
  });
});

server.listen(portArgument(), "127.0.0.1", () => announce(server));
