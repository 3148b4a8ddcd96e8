import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type ClientHttp2Session } from "node:http2";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startHerald, TestClient } from "./support/herald.js";
import { tempDir } from "./support/processes.js";
import { openSse, SseRecorder } from "./support/sse.js";

const STREAMS = 200;
const EVENTS = 100;

type Node = Awaited<ReturnType<typeof startHerald>>;

/** Writes a self-signed certificate for 127.0.0.1 with openssl. */
function selfSignedCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

/** Waits for the server's SETTINGS so the client may open more than its default 100 streams. */
function settled(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    session.once("remoteSettings", () => resolve());
    session.once("error", reject);
  });
}

/** Opens `count` event streams on one session and resolves when each has its subscribed event. */
async function openStreams(session: ClientHttp2Session, path: string, count: number): Promise<SseRecorder[]> {
  const recorders: SseRecorder[] = [];
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    const recorder = new SseRecorder();
    const stream = session.request({ ":path": path, accept: "text/event-stream" });
    stream.setEncoding("utf8");
    stream.on("response", (headers) => {
      statuses.push(Number(headers[":status"]));
      assert.equal(headers["content-type"], "text/event-stream");
    });
    stream.on("data", (chunk: string) => recorder.feed(chunk));
    stream.on("error", () => undefined);
    recorders.push(recorder);
  }
  await Promise.all(recorders.map((recorder) => recorder.waitFor(() => recorder.named("subscribed").length === 1, 20_000)));
  assert.deepEqual(new Set(statuses), new Set([200]));
  return recorders;
}

/** Opens the streams on `channels` (the first gets the events) and checks each receives all of them. */
async function fanOutOverOneSession(node: Node, session: ClientHttp2Session, channels: string[]): Promise<void> {
  await settled(session);
  assert.ok((session.remoteSettings.maxConcurrentStreams ?? 0) >= STREAMS);
  const query = channels.map((channel) => `channel=${channel}`).join("&");
  const recorders = await openStreams(session, `/sse?${query}`, STREAMS);
  assert.equal(node.server.hub.subscriptionCount, STREAMS * channels.length);
  const channel = channels[0]!;
  assert.equal(node.server.listener.sockets.size, 1, "every stream shares one connection");

  for (let i = 1; i <= EVENTS; i++) {
    await node.server.hub.publish(channel, JSON.stringify({ i }));
  }
  const expected = Array.from({ length: EVENTS }, (_, i) => i + 1);
  for (const recorder of recorders) {
    await recorder.waitForMessages(EVENTS, 20_000);
    assert.deepEqual(recorder.messages().map((message) => message.offset), expected);
  }
  session.close();
}

describe("sse over http2 with tls", () => {
  let node: Node;
  let dir: ReturnType<typeof tempDir>;
  let cert: string;

  before(async () => {
    dir = tempDir("herald-tls-");
    const files = selfSignedCertificate(dir.path);
    cert = readFileSync(files.cert, "utf8");
    node = await startHerald({ tls: files });
  });

  after(async () => {
    await node.close();
    dir.cleanup();
  });

  test("200 streams share one connection", async () => {
    const session = connect(`https://127.0.0.1:${node.port}`, { ca: cert });
    await fanOutOverOneSession(node, session, ["tls-fan"]);
    assert.equal(session.alpnProtocol, "h2");
  });

  test("websocket upgrade still works over http/1.1", async () => {
    const client = await TestClient.open(`wss://127.0.0.1:${node.port}/ws`, { ca: cert });
    const reply = await client.request({ type: "subscribe", channel: "tls-ws" });
    assert.equal(reply.type, "reply");
    await node.server.hub.publish("tls-ws", "{\"n\":1}");
    const [event] = await client.waitForPubs("tls-ws", 1);
    assert.deepEqual(event, { type: "pub", channel: "tls-ws", offset: 1, data: { n: 1 } });
    client.close();
  });
});

describe("sse over h2c", () => {
  let node: Node;

  before(async () => {
    node = await startHerald({ h2c: true });
  });

  after(async () => {
    await node.close();
  });

  test("200 streams share one connection", async () => {
    const session = connect(`http://127.0.0.1:${node.port}`);
    // Two channels, so each stream builds its own ids on the HTTP/2 path too.
    await fanOutOverOneSession(node, session, ["h2c-fan", "h2c-other"]);
  });

  test("a keyless publish from loopback is accepted over h2c", async () => {
    const session = connect(`http://127.0.0.1:${node.port}`);
    try {
      const request = session.request({ ":method": "POST", ":path": "/api/publish", "content-type": "application/json" });
      request.setEncoding("utf8");
      let body = "";
      request.on("data", (chunk: string) => (body += chunk));
      const response = new Promise<number>((resolve, reject) => {
        request.on("response", (headers) => resolve(Number(headers[":status"])));
        request.on("error", reject);
      });
      const ended = new Promise((resolve) => request.on("end", resolve));
      request.end(JSON.stringify({ channel: "h2c-publish", data: { n: 1 } }));
      const status = await response;
      await ended;
      assert.equal(status, 200, body);
      assert.equal(JSON.parse(body).offset, 1);
    } finally {
      session.close();
    }
  });

  test("http/1.1 is served on the same port", async () => {
    const stream = await openSse(`${node.http}/sse?channel=h2c-plain`);
    assert.equal(stream.status, 200);
    await stream.recorder.waitFor(() => stream.recorder.named("subscribed").length === 1);
    await node.server.hub.publish("h2c-plain", "\"hello\"");
    await stream.recorder.waitForMessages(1);
    assert.equal(stream.recorder.messages()[0]!.data, "hello");
    stream.close();

    const client = await TestClient.open(node.ws);
    const reply = await client.request({ type: "subscribe", channel: "h2c-ws" });
    assert.equal(reply.type, "reply");
    client.close();
  });
});
