// A backend that publishes and consumes Herald channels over gRPC.
// Run a node with the gRPC API on, then this file:
//   HERALD_GRPC_ENABLED=true npm start
//   npx tsx examples/grpc-client.ts
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const definition = protoLoader.loadSync(join(import.meta.dirname, "..", "proto", "herald", "v1", "herald.proto"), {
  longs: Number,
  defaults: true,
  oneofs: true,
});
const { herald } = grpc.loadPackageDefinition(definition) as any;
const client = new herald.v1.Herald(process.env.HERALD_GRPC ?? "127.0.0.1:8081", grpc.credentials.createInsecure());

const metadata = new grpc.Metadata();
if (process.env.HERALD_API_KEY) {
  metadata.set("authorization", `Bearer ${process.env.HERALD_API_KEY}`);
}

// Resume from the last position this process saw; none on the first run.
let position: { epoch: string; offset: number } | undefined;

const stream = client.Subscribe({ channels: [{ channel: "news", since: position }] }, metadata);
stream.on("data", (event: any) => {
  if (event.subscribed) {
    position = { epoch: event.subscribed.epoch, offset: event.subscribed.offset };
  } else if (event.publication) {
    position = { epoch: event.publication.epoch, offset: event.publication.offset };
    console.log("event", event.publication.offset, JSON.parse(event.publication.data.toString()));
  } else if (event.gap) {
    position = { epoch: event.gap.epoch, offset: event.gap.offset };
    console.warn("events were lost before offset", event.gap.offset + 1);
  }
});
stream.on("error", (error: grpc.ServiceError) => {
  // UNAVAILABLE while a node drains: subscribe again, on any node, from `position`.
  console.error("stream ended:", grpc.status[error.code], error.details);
});

const data = Buffer.from(JSON.stringify({ text: "hello from gRPC" }));
client.Publish({ channel: "news", data, idempotencyKey: "hello-1" }, metadata, (error: grpc.ServiceError | null, reply: any) => {
  if (error) {
    console.error("publish failed:", grpc.status[error.code], error.details);
    return;
  }
  console.log("published at offset", reply.offset, "epoch", reply.epoch);
  setTimeout(() => {
    stream.cancel();
    client.close();
  }, 500);
});
