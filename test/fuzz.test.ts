import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { encodeCursor } from "../src/cursor.js";
import { ERRORS } from "../src/errors.js";
import { publish, startHerald, TestClient } from "./support/herald.js";
import { waitUntil } from "./support/ports.js";
import { nestedJson, Random } from "./support/fuzz.js";
import { RawWebSocket } from "./support/raw-websocket.js";
import { HMAC_SECRET, signToken } from "./support/tokens.js";

const SEED = Number(process.env.HERALD_FUZZ_SEED ?? 20261204);
const WS_FRAMES = 1_500;
const HTTP_REQUESTS = 600;
const SSE_REQUESTS = 400;
/** Each part stops early once it has run this long, so the suite stays fast on a slow machine. */
const TIME_BUDGET_MS = 20_000;
/** Close codes listed in docs/protocol.md, including those ws uses for invalid frames. */
const CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4001, 4003, 4008, 4029]);
/** Error codes seen, reported at the end so a run shows what it reached. */
const seen = new Map<string, number>();
const CHANNELS = ["fz:a", "fz:b", "news", "", "a".repeat(201), "bad channel", "fz:*", "__proto__", "constructor"];

describe(`fuzz (seed ${SEED})`, () => {
  let node: Awaited<ReturnType<typeof startHerald>>;
  let canary: TestClient;
  let published = 0;
  let publishing = true;
  let publisher: Promise<void>;

  before(async () => {
    node = await startHerald({
      auth: { hmacSecret: HMAC_SECRET },
      namespaces: { fz: { clientPublish: true, anonymousSubscribe: true, presence: true }, canary: { anonymousSubscribe: true } },
      limits: { commandRate: 100_000, commandBurst: 100_000 },
    });
    canary = await TestClient.open(node.ws);
    await canary.request({ type: "subscribe", channel: "canary:main" });
    publisher = (async () => {
      while (publishing) {
        await publish(node.http, "canary:main", { n: ++published });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
  });

  after(async () => {
    console.log(`# codes seen: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    publishing = false;
    await publisher;
    const events = await canary.waitForPubs("canary:main", published, 20_000);
    assert.deepEqual(
      events.map((event) => event.data.n),
      Array.from({ length: published }, (_, i) => i + 1),
      "the canary got every event, in order",
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype is untouched");
    canary.close();
    await node.close();
  });

  test("websocket commands", async () => {
    const random = new Random(SEED);
    const tokens = [
      await signToken(HMAC_SECRET, { claims: { channels: ["fz:*"], publish: ["*"] } }),
      await signToken(HMAC_SECRET, { expiresIn: -10 }),
      "a.b.c",
    ];
    const started = Date.now();
    let client = await RawWebSocket.open(node.port);
    let answered = 0;
    for (let i = 0; i < WS_FRAMES && Date.now() - started < TIME_BUDGET_MS; i++) {
      if (client.ended || client.closeCode !== undefined) {
        assertCloseCode(client.closeCode);
        client.destroy();
        client = await RawWebSocket.open(node.port);
      }
      const before = client.texts.length;
      const frame = wsFrame(random, i, tokens);
      if (frame instanceof Buffer) {
        client.socket.write(frame);
      } else {
        client.sendText(frame);
      }
      // Lockstep: the next reply or error (not counting pushes) belongs to this frame, unless the node closed the socket.
      await client.until(
        () => client.ended || client.closeCode !== undefined || client.texts.slice(before).some((text) => isAnswer(text)),
        5_000,
      );
      for (const text of client.texts.slice(before)) {
        assertDocumented(JSON.parse(text), frame);
      }
      answered++;
    }
    client.destroy();
    assert.ok(answered >= 200, `only ${answered} frames were sent`);
  });

  test("http requests", async () => {
    const random = new Random(SEED + 1);
    const started = Date.now();
    let sent = 0;
    let streams = 0;
    for (let i = 0; i < HTTP_REQUESTS && Date.now() - started < TIME_BUDGET_MS; i++) {
      const request = httpRequest(random);
      const response = await rawHttp(node.port, request);
      assert.ok(response.status > 0, `no status for ${JSON.stringify(request.slice(0, 200))}`);
      if (response.stream) {
        assert.equal(response.status, 200, `event stream with status ${response.status}`);
        streams++;
      }
      if (response.status >= 400 && !request.startsWith("HEAD ")) {
        const code = errorCode(response.body, request);
        assert.ok(code in ERRORS, `undocumented code ${code} for ${JSON.stringify(request.slice(0, 200))}`);
        assert.equal(ERRORS[code as keyof typeof ERRORS].status, response.status, code);
        assert.notEqual(code, "internal", `internal error for ${JSON.stringify(request.slice(0, 300))}`);
        seen.set(`http ${code}`, (seen.get(`http ${code}`) ?? 0) + 1);
      }
      sent++;
    }
    assert.ok(sent >= 100, `only ${sent} requests were sent`);
    seen.set("http event streams", streams);

    // Upgrade requests: each gets 101 (and is then dropped) or a documented JSON error.
    for (let i = 0; i < 200 && Date.now() - started < TIME_BUDGET_MS; i++) {
      const request = upgradeRequest(random);
      const response = await rawHttp(node.port, request, true);
      assert.ok(response.status > 0, `no status for ${JSON.stringify(request)}`);
      if (response.status !== 101) {
        const code = errorCode(response.body, request);
        assert.ok(code in ERRORS, `undocumented code ${code} for ${JSON.stringify(request)}`);
        assert.equal(ERRORS[code as keyof typeof ERRORS].status, response.status, code);
        seen.set(`upgrade ${code}`, (seen.get(`upgrade ${code}`) ?? 0) + 1);
      }
    }
    await waitUntil(async () => (await fetch(`${node.http}/healthz`)).status === 200, 5_000, "the node to answer");
  });

  test("sse requests", async () => {
    const random = new Random(SEED + 2);
    const tokens = [
      await signToken(HMAC_SECRET, { claims: { channels: ["fz:*", "news"] } }),
      await signToken(HMAC_SECRET, { expiresIn: -10 }),
      "a.b.c",
      random.string(60),
    ];
    const { epoch } = await publish(node.http, "fz:a", { cursor: true });

    const started = Date.now();
    let streams = 0;
    let sent = 0;
    for (let i = 0; i < SSE_REQUESTS && Date.now() - started < TIME_BUDGET_MS; i++) {
      const request = sseRequest(random, tokens, epoch);
      // Not half-closed: Node's HTTP server ends a socket that its client half-closed, which drops
      // the response to a request whose token is still being checked.
      const response = await rawHttp(node.port, request, false, false);
      assert.ok(response.status > 0, `no status for ${JSON.stringify(request.slice(0, 200))}`);
      if (response.stream) {
        assert.equal(response.status, 200, `event stream with status ${response.status}`);
        streams++;
      } else if (response.status >= 400) {
        const code = errorCode(response.body, request);
        assert.ok(code in ERRORS, `undocumented code ${code} for ${JSON.stringify(request.slice(0, 200))}`);
        assert.equal(ERRORS[code as keyof typeof ERRORS].status, response.status, code);
        assert.notEqual(code, "internal", `internal error for ${JSON.stringify(request.slice(0, 300))}`);
        seen.set(`sse ${code}`, (seen.get(`sse ${code}`) ?? 0) + 1);
      } else if (!(request.startsWith("OPTIONS ") && response.status === 204)) {
        assert.fail(`status ${response.status} without an event stream for ${JSON.stringify(request.slice(0, 200))}`);
      }
      sent++;
    }

    seen.set("sse streams", streams);
    assert.ok(sent >= 100, `only ${sent} requests were sent`);
    assert.ok(streams > 0, "no request opened a stream");
    // rawHttp cut every stream it opened; the node must have let go of each.
    await waitUntil(async () => (await healthz(node.http)).connections.sse === 0, 5_000, "the fuzzed event streams to close");
  });
});

/** Builds one GET /sse with random, often invalid, channels, cursors, tokens and headers. */
function sseRequest(random: Random, tokens: string[], epoch: string): string {
  const parts: string[] = [];
  for (let i = random.int(4); i > 0; i--) {
    parts.push(`channel=${random.pick([...CHANNELS.slice(0, 3), "canary:main", "$admin:stats", encodeURIComponent(random.string(20))])}`);
  }
  const cursors = [
    encodeCursor(["fz:a"], new Map([["fz:a", { epoch, offset: random.int(3) }]])),
    `1.${random.string(30, "abc019-.")}`,
    random.string(40),
    "%zz",
    "1." + "a".repeat(random.chance(0.5) ? 5_000 : 100),
  ];
  if (random.chance(0.3)) parts.push(`lastEventId=${encodeURIComponent(random.pick(cursors))}`);
  if (random.chance(0.4)) parts.push(`token=${encodeURIComponent(random.pick(tokens))}`);
  if (random.chance(0.1)) parts.push(`${random.pick(["channel", "token", "x"])}=${random.string(20, "abc%&=")}`);
  const headers = ["Host: 127.0.0.1", "Connection: close", "Accept: text/event-stream"];
  const optional: Array<[number, string]> = [
    [0.2, `Last-Event-ID: ${random.pick(cursors).replace(/[\r\n]/g, "")}`],
    [0.2, `Authorization: ${random.pick(["Bearer ", "Basic ", "bearer "])}${random.pick(tokens)}`],
    [0.2, `Origin: ${random.pick(["https://evil.example", "null", "http://127.0.0.1", random.string(20, "abc:/.")])}`],
  ];
  for (const [probability, header] of optional) {
    if (random.chance(probability)) headers.push(header);
  }
  const method = random.chance(0.9) ? "GET" : random.pick(["OPTIONS", "POST", "DELETE"]);
  const query = parts.length === 0 ? "" : `?${parts.join("&")}`;
  return `${method} /sse${query} HTTP/1.1\r\n${headers.join("\r\n")}\r\nContent-Length: 0\r\n\r\n`;
}

/** Builds one raw upgrade request with random, often invalid, handshake headers. */
function upgradeRequest(random: Random): string {
  const path = random.pick(["/ws", "/ws", "/ws?token=" + random.string(40, "abc.%"), "/nope", "/ws?token=a&token=b"]);
  const method = random.pick(["GET", "GET", "GET", "POST"]);
  const headers = ["Host: 127.0.0.1", "Connection: Upgrade"];
  const optional: Array<[number, string]> = [
    [0.9, `Upgrade: ${random.pick(["websocket", "websocket", "WebSocket", "h2c", ""])}`],
    [0.9, `Sec-WebSocket-Key: ${random.pick(["dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==", "short", random.string(30)])}`],
    [0.9, `Sec-WebSocket-Version: ${random.pick(["13", "13", "8", "7", "x"])}`],
    [0.3, `Origin: ${random.pick(["https://evil.example", "null", "http://127.0.0.1", random.string(20)])}`],
    [0.2, `Sec-WebSocket-Protocol: ${random.string(20, "a, ;=")}`],
    [0.2, `Sec-WebSocket-Extensions: ${random.string(30, "a;=, permessage-deflate")}`],
    [0.2, `Authorization: ${random.pick(["Bearer ", "Basic "])}${random.string(30)}`],
  ];
  for (const [probability, header] of optional) {
    if (random.chance(probability)) headers.push(header);
  }
  return `${method} ${path} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`;
}

function errorCode(body: string, request: string): string {
  try {
    return (JSON.parse(body) as { error: { code: string } }).error.code;
  } catch {
    assert.fail(`the error body ${JSON.stringify(body.slice(0, 200))} is not JSON, for ${JSON.stringify(request.slice(0, 300))}`);
  }
}

function isAnswer(text: string): boolean {
  const message = JSON.parse(text) as { type: string };
  return message.type === "reply" || message.type === "error";
}

function assertDocumented(message: { type: string; error?: { code: string } }, frame: string | Buffer): void {
  assert.ok(["reply", "error", "pub", "gap", "join", "leave"].includes(message.type), `unknown message type ${message.type}`);
  if (message.type === "error") {
    const code = message.error?.code ?? "";
    assert.ok(code in ERRORS, `undocumented code ${code} for ${String(frame).slice(0, 200)}`);
    assert.notEqual(code, "internal", `internal error for ${String(frame).slice(0, 200)}`);
    seen.set(code, (seen.get(code) ?? 0) + 1);
  }
}

function assertCloseCode(code: number | undefined): void {
  // undefined: the node cut the socket after its close frame could not be read in time.
  if (code !== undefined) {
    assert.ok(CLOSE_CODES.has(code), `undocumented close code ${code}`);
  }
}

/** Builds one client frame: a mutated command, random JSON, or a hostile encoding. */
function wsFrame(random: Random, id: number, tokens: string[]): string | Buffer {
  const type = random.pick(["connect", "subscribe", "unsubscribe", "publish", "history", "presence", "refresh", "ping", "nope", ""]);
  switch (random.int(12)) {
    case 0:
      return JSON.stringify(random.json());
    case 1:
      return nestedJson(1 + random.int(20_000), random.chance(0.5));
    case 2:
      return `{"id":${id},"type":"publish","channel":"fz:a","data":${nestedJson(1 + random.int(10_000), random.chance(0.5))}}`;
    case 3:
      return `{"__proto__":{"polluted":1},"id":${id},"type":"${type}","channel":"fz:a","constructor":{"prototype":{"polluted":1}}}`;
    case 4:
      return `{"id":${random.pick(["1e999", "-1", "1.5", "9007199254740993", "null", '""', "[]", '"' + "i".repeat(65) + '"'])},"type":"ping"}`;
    case 5:
      return random.string(200);
    case 6:
      // Invalid UTF-8 in a text frame (RFC 6455 section 8.1: the endpoint must fail the connection).
      return Buffer.concat([Buffer.from([0x81, 0x84]), Buffer.alloc(4), Buffer.from([0xc3, 0x28, 0xff, 0xfe])]);
    case 7:
      // A binary frame, which Herald does not accept.
      return Buffer.concat([Buffer.from([0x82, 0x82]), Buffer.alloc(4), Buffer.from([1, 2])]);
    default: {
      const command: Record<string, unknown> = { id: random.chance(0.95) ? id : random.json(), type };
      if (random.chance(0.8)) command.channel = random.pick(CHANNELS);
      if (random.chance(0.3)) command.since = random.chance(0.5) ? random.json() : { epoch: random.string(40), offset: random.json() };
      if (random.chance(0.3)) command.token = random.chance(0.7) ? random.pick(tokens) : random.json();
      if (random.chance(0.5)) command.data = random.json();
      if (random.chance(0.2)) command.limit = random.json();
      if (random.chance(0.2)) command[random.string(10)] = random.json();
      return JSON.stringify(command);
    }
  }
}

/** Builds one raw HTTP/1.1 request with random path, query, headers and body. */
function httpRequest(random: Random): string {
  const path = random.pick(["/api/publish", "/api/publish_batch", "/api/history", "/healthz", "/readyz", "/ws", "/sse", "/sse", "/nope", "/", "/api"]);
  const method = random.pick(["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD", "PATCH"]);
  const query = httpQuery(random);
  const headers = [`Host: 127.0.0.1`, "Connection: close"];
  for (let i = random.int(4); i > 0; i--) {
    headers.push(
      random.pick([
        `Authorization: ${random.pick(["Bearer ", "Basic x", "Bearer a b", "bearer", ""])}${random.string(50)}`,
        `Origin: ${random.pick(["https://evil.example", "null", "http://127.0.0.1", random.string(30)])}`,
        `Access-Control-Request-Method: ${random.string(10)}`,
        `Idempotency-Key: ${random.string(300)}`,
        `X-${random.string(10, "abc")}: ${random.string(100)}`,
        `Content-Type: ${random.pick(["application/json", "text/plain", "multipart/form-data; boundary=x"])}`,
        `${random.string(8, "a\u0000 :\u00e9")}: x`,
        `X-Big: ${"h".repeat(random.chance(0.5) ? 20_000 : 100)}`,
        `Transfer-Encoding: ${random.pick(["chunked", "gzip", "identity"])}`,
      ]),
    );
  }
  const body = method === "GET" || method === "HEAD" || random.chance(0.2) ? "" : httpBody(random);
  if (!headers.some((header) => header.startsWith("Transfer-Encoding"))) {
    headers.push(`Content-Length: ${Buffer.byteLength(body)}`);
  }
  return `${method} ${path}${query} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n${body}`;
}

function httpQuery(random: Random): string {
  if (random.chance(0.2)) return "";
  const parts: string[] = [];
  for (let i = random.int(6); i > 0; i--) {
    const name = random.pick(["channel", "since", "limit", "token", "cursor", "lastEventId", "x", "__proto__"]);
    const value = random.pick([
      random.pick(["fz:a", "news", "canary:main"]),
      random.string(20, "abc%:-_"),
      "%zz",
      "%",
      "%E0%A4%A",
      "%00",
      encodeURIComponent(JSON.stringify(random.json())),
      "9".repeat(30),
      "-1",
      "q".repeat(random.chance(0.3) ? 20_000 : 300),
    ]);
    parts.push(`${name}=${value}`);
  }
  return `?${parts.join("&").replace(/[ \r\n]/g, "+")}`;
}

function httpBody(random: Random): string {
  switch (random.int(5)) {
    case 0:
      return JSON.stringify({ channel: random.pick(["fz:a", "fz:b", "x", ""]), data: random.json() });
    case 1:
      return JSON.stringify({ items: Array.from({ length: random.int(4) }, () => (random.chance(0.7) ? { channel: "fz:b", data: random.json() } : random.json())) });
    case 2:
      return `{"channel":"fz:a","data":${nestedJson(1 + random.int(20_000), random.chance(0.5))}}`;
    case 3:
      return `{"__proto__":{"polluted":1},"channel":"fz:a","data":1}`;
    default:
      return random.string(300);
  }
}

async function healthz(http: string): Promise<{ connections: Record<string, number> }> {
  return (await (await fetch(`${http}/healthz`)).json()) as { connections: Record<string, number> };
}

/**
 * Sends raw bytes and reads the whole response of a `Connection: close`
 * request. With `upgrade`, a 101 response ends the read at its head. An
 * event stream never ends by itself, so its read ends at its head too,
 * and the socket is cut. With `halfClose`, the request ends with a FIN.
 */
function rawHttp(port: number, request: string, upgrade = false, halfClose = true): Promise<{ status: number; body: string; stream: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let stream = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within 5 s to ${JSON.stringify(request.slice(0, 200))}`));
    }, 5_000);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString();
      if (upgrade && responseComplete(text)) {
        socket.destroy();
      } else if (!upgrade && isEventStream(text)) {
        stream = true;
        socket.destroy();
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const head = text.indexOf("\r\n\r\n");
      resolve({ status, body: head < 0 ? "" : text.slice(head + 4), stream });
    });
    socket.write(request);
    if (!upgrade && halfClose) {
      socket.end();
    }
  });
}

/** Whether the response head has arrived and announces an event stream. */
function isEventStream(text: string): boolean {
  const head = text.indexOf("\r\n\r\n");
  return head >= 0 && /\r\ncontent-type: *text\/event-stream/i.test(text.slice(0, head));
}

/** Whether a response is whole: a 101 head, or a head and a body of its Content-Length. */
function responseComplete(text: string): boolean {
  const head = text.indexOf("\r\n\r\n");
  if (head < 0) {
    return false;
  }
  if (text.startsWith("HTTP/1.1 101 ")) {
    return true;
  }
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head))?.[1];
  return length !== undefined && Buffer.byteLength(text.slice(head + 4)) >= Number(length);
}
