import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_PATH = join(import.meta.dirname, "..", "..", "proto", "herald", "v1", "herald.proto");

/** A grpc-js client of herald.v1.Herald, with promise helpers for unary calls. */
export function grpcClient(port: number, apiKey?: string) {
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, defaults: true, oneofs: true });
  const root = grpc.loadPackageDefinition(definition) as any;
  const client = new root.herald.v1.Herald(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const metadata = () => {
    const value = new grpc.Metadata();
    if (apiKey !== undefined) value.set("authorization", `Bearer ${apiKey}`);
    return value;
  };
  const call = (method: string, request: unknown): Promise<any> =>
    new Promise((resolve, reject) => {
      client[method](request, metadata(), (error: grpc.ServiceError | null, response: unknown) => (error ? reject(error) : resolve(response)));
    });
  return {
    raw: client,
    publish: (channel: string, data: unknown, idempotencyKey = "") =>
      call("Publish", { channel, data: Buffer.from(JSON.stringify(data)), idempotencyKey }),
    call,
    subscribe: (channels: Array<{ channel: string; since?: { epoch: string; offset: number } }>): grpc.ClientReadableStream<any> =>
      client.Subscribe({ channels }, metadata()),
    close: () => client.close(),
  };
}

/** Collects a Subscribe stream's events and its final status. */
export function collect(stream: grpc.ClientReadableStream<any>) {
  const events: any[] = [];
  const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
  stream.on("data", (event) => events.push(event));
  stream.on("error", () => undefined);
  return {
    events,
    status,
    publications: (channel: string) => events.filter((event) => event.publication?.channel === channel).map((event) => event.publication),
  };
}
