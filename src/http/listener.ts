import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import {
  createSecureServer,
  createServer as createHttp2Server,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
  type Settings,
} from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { Duplex } from "node:stream";
import type { Config } from "../config.js";
import { protocolError } from "../errors.js";
import { rawErrorResponse } from "./respond.js";

/**
 * Request handler shared by HTTP/1.1 and HTTP/2. HTTP/2 requests arrive
 * through Node's compatibility API, whose request and response objects
 * offer the members Herald uses (headers, url, writeHead, write, end,
 * writableLength, destroy, the 'close' event) under the same names.
 */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Connections the kernel may queue before the node accepts them. Node's
 * default of 511 drops the SYNs of a reconnect storm, and each dropped
 * client waits 1 s, then 3 s, for its kernel to try again. The kernel caps
 * the value at net.core.somaxconn (4096 by default on current Linux).
 */
const LISTEN_BACKLOG = 65_535;

/** Remote address of each h2c session, whose requests cannot read it from their socket (see ReplayingSocket). */
const h2cAddresses = new WeakMap<ServerHttp2Session, string>();

/**
 * Returns the client's address: the socket's, or for a request on an h2c
 * session, the TCP connection's. Keyless publishing from loopback,
 * per-address limits and logs all need it.
 */
export function remoteAddress(req: IncomingMessage): string | undefined {
  const address = req.socket.remoteAddress;
  if (address !== undefined) {
    return address;
  }
  const session = (req as unknown as Partial<Http2ServerRequest>).stream?.session as ServerHttp2Session | undefined;
  return session === undefined ? undefined : h2cAddresses.get(session);
}

export interface ListenerHandlers {
  request: RequestHandler;
  upgrade: UpgradeHandler;
  /** Told of each malformed HTTP/1.1 request, to which the listener itself responds with a 400. */
  clientError?: (error: Error) => void;
}

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS announced to HTTP/2 clients. A browser
 * keeps every EventSource of an origin on one connection, so this caps
 * the streams of one page; nghttp2's own default is 100.
 */
export const HTTP2_MAX_CONCURRENT_STREAMS = 1000;

/** The first bytes of every HTTP/2 connection (RFC 9113, section 3.4). */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * The node's listening socket. By default it serves HTTP/1.1 alone. With
 * `tls.cert` and `tls.key` it serves TLS, with ALPN offering h2 and
 * http/1.1. With `h2c` it serves HTTP/2 with prior knowledge beside
 * HTTP/1.1 on a plain port. WebSocket upgrades work in every mode because
 * they always arrive over HTTP/1.1.
 */
export class Listener {
  /** Every accepted TCP connection, so that close() can end them all. */
  readonly sockets = new Set<Socket>();
  private readonly server: NetServer;
  /** HTTP/1.1 servers whose idle keep-alive connections close() ends at once. */
  private readonly http1Servers: HttpServer[] = [];
  /** Open HTTP/2 sessions, which close() asks to end with a GOAWAY. */
  private readonly sessions = new Set<ServerHttp2Session>();

  constructor(config: Config, handlers: ListenerHandlers) {
    const settings: Settings = { maxConcurrentStreams: HTTP2_MAX_CONCURRENT_STREAMS };
    if (config.tls.cert !== "" || config.tls.key !== "") {
      const secure = createSecureServer(
        {
          cert: readFileSync(config.tls.cert),
          key: readFileSync(config.tls.key),
          allowHTTP1: true,
          settings,
        },
        compat(handlers.request),
      );
      attachHttp1(secure, handlers);
      this.trackSessions(secure);
      this.server = secure;
    } else if (config.h2c) {
      this.server = this.createPlainSniffer(handlers, settings);
    } else {
      const http1 = createServer(handlers.request);
      attachHttp1(http1, handlers);
      this.http1Servers.push(http1);
      this.server = http1;
    }
    this.server.on("connection", (socket: Socket) => this.track(socket));
  }

  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /**
   * Stops accepting and closes idle HTTP/1.1 keep-alive connections at
   * once. Requests still in progress (a publish, say) may finish within
   * budgetMs; every socket still open then is destroyed, so close() never
   * waits longer than budgetMs on a keep-alive, streaming, upgraded or
   * half-closed connection.
   */
  close(budgetMs = 0): Promise<void> {
    return new Promise((resolve) => {
      const destroyAll = () => {
        for (const socket of this.sockets) {
          socket.destroy();
        }
      };
      const timer = setTimeout(destroyAll, Math.max(0, budgetMs));
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const server of this.http1Servers) {
        server.closeIdleConnections();
      }
      for (const session of this.sessions) {
        // Lets streams in progress finish and refuses new ones.
        session.close();
      }
    });
  }

  private trackSessions(server: Http2SecureServer | Http2Server): void {
    server.on("session", (session: ServerHttp2Session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
  }

  /**
   * Creates a TCP server that reads the first bytes of each connection and
   * hands it to the HTTP/2 server when they are the HTTP/2 preface, else
   * to the HTTP/1.1 server.
   */
  private createPlainSniffer(handlers: ListenerHandlers, settings: Settings): NetServer {
    const http1 = createServer(handlers.request);
    attachHttp1(http1, handlers);
    this.http1Servers.push(http1);
    const http2 = createHttp2Server({ settings }, compat(handlers.request));
    this.trackSessions(http2);
    // The server makes the session while it handles 'connection', so the socket being handed over is known then.
    let arriving: Socket | undefined;
    http2.on("session", (session) => {
      if (arriving?.remoteAddress !== undefined) {
        h2cAddresses.set(session, arriving.remoteAddress);
      }
    });
    return createNetServer((socket) => {
      let head: Buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const compared = Math.min(head.length, HTTP2_PREFACE.length);
        const isHttp2 = head.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
        if (isHttp2 && head.length < HTTP2_PREFACE.length) {
          return;
        }
        socket.off("data", onData);
        socket.pause();
        socket.unshift(head);
        if (isHttp2) {
          arriving = socket;
          http2.emit("connection", new ReplayingSocket(socket));
          arriving = undefined;
        } else {
          http1.emit("connection", socket);
          // The HTTP/1.1 parser listens for 'data' but leaves the socket as it finds it.
          socket.resume();
        }
      };
      socket.on("data", onData);
      socket.on("error", () => socket.destroy());
    });
  }
}

function attachHttp1(server: HttpServer | Http2SecureServer | Http2Server, handlers: ListenerHandlers): void {
  server.on("upgrade", handlers.upgrade);
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed HTTP from one client gets 400 (431 for oversized headers), and the others are still served.
    handlers.clientError?.(error);
    if (socket.writable) {
      const code = error.code === "HPE_HEADER_OVERFLOW" ? "headers_too_large" : "bad_request";
      const response = rawErrorResponse(protocolError(code, code === "bad_request" ? "The HTTP request is malformed." : undefined));
      // Destroyed once flushed, so a client that never sends its FIN cannot hold close() open.
      socket.once("finish", () => socket.destroy());
      socket.end(response);
    } else {
      socket.destroy(error);
    }
  });
}

function compat(handler: RequestHandler): (req: Http2ServerRequest, res: Http2ServerResponse) => void {
  return (req, res) => handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
}

/**
 * A TCP socket seen through a plain Duplex, so that bytes already read
 * from it (and put back with unshift) reach the HTTP/2 session. Node 20's
 * HTTP/2 session reads a raw socket straight from its handle, so it would
 * skip them. It reads a Duplex without a handle through the stream API.
 * Node wraps such a stream in a socket of its own that has no
 * addresses, so the TCP socket's remote address is kept per session in
 * `h2cAddresses`, for remoteAddress().
 */
class ReplayingSocket extends Duplex {
  constructor(private readonly socket: Socket) {
    super();
    socket.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) {
        socket.pause();
      }
    });
    socket.on("end", () => this.push(null));
    socket.on("close", () => this.destroy());
    socket.on("error", (error) => this.destroy(error));
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}
