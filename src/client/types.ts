import type { StreamPosition } from "./position.js";

export type TransportName = "websocket" | "sse" | "poll";

/** The part of the WebSocket API the client uses; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of the EventSource API the client uses. */
export interface EventSourceLike {
  onmessage: ((event: { data: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: { data: string }) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string) => EventSourceLike;

export type FetchFunction = (input: string, init?: RequestInit) => Promise<Response>;

/** An error from the server (with its stable code) or from the client itself. */
export class HeraldClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status or WebSocket close code, when the error came with one. */
    readonly status?: number,
    /** The channel the error concerns, if any. */
    readonly channel?: string,
  ) {
    super(message);
    this.name = "HeraldClientError";
  }
}

/** The reason and code with which a transport stopped. */
export interface CloseInfo {
  /** WebSocket close code, or the close code matching an HTTP failure. */
  readonly code: number;
  readonly reason: string;
  /** The error behind the close, when there is one. */
  readonly error?: HeraldClientError;
}

/** The node URL, token and fetch function for the client's HTTP requests. */
export interface HttpTarget {
  /** Base URL of the node, without a trailing slash. */
  readonly url: string;
  readonly token: string | undefined;
  readonly fetch: FetchFunction;
}

/** The client's interface to a transport: positions to read, events and state to report. */
export interface TransportHost extends HttpTarget {
  /** Channels the application subscribes to, sorted. */
  channels(): string[];
  position(channel: string): StreamPosition | undefined;
  /** The transport can carry events: connected, subscribed or polled once. */
  opened(): void;
  /**
   * The server confirmed a subscription at `position`. It sets the
   * position only when the client has none: a resume keeps its own, and
   * a resume that failed is followed by a gap notice.
   */
  subscribed(channel: string, position: StreamPosition): void;
  event(channel: string, offset: number, data: unknown): void;
  gap(channel: string, position: StreamPosition): void;
  /** Sets a position without an event, as a poll cursor or a position lookup reports it. */
  setPosition(channel: string, position: StreamPosition): void;
  /** A request for one channel failed; the transport keeps serving the others. */
  channelFailed(channel: string, error: HeraldClientError): void;
  closed(info: CloseInfo): void;
}

export interface PublishResult {
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
}

/** One way of reaching the node; the client runs one at a time for every channel. */
export interface ClientTransport {
  readonly name: TransportName;
  open(): void;
  /** The application's channel set changed. */
  channelsChanged(): void;
  /** Publishes over this transport; returns undefined, or lacks the method, to let the client use HTTP. */
  publish?(channel: string, data: unknown): Promise<PublishResult> | undefined;
  /** Lists presence; only transports with a command channel have it. */
  presence?(channel: string): Promise<unknown> | undefined;
  close(): void;
}

export interface HeraldClientOptions {
  /** Base URL of a node, such as `https://rt.example.com`; `ws:` and `wss:` work too. */
  url: string;
  /** Connection token, sent on connect, as a Bearer header, or as the SSE `token` parameter. */
  token?: string;
  /**
   * Returns a fresh connection token. When the node ends the connection
   * with `token_expired`, the client calls it and reconnects with the new
   * token; without it, the client closes. A rejected promise closes it too.
   */
  getToken?: () => string | Promise<string>;
  /** Transports to try, best first. Default: websocket, sse, poll. */
  transports?: TransportName[];
  /** Minimum reconnect delay, in ms. Default 500. */
  minDelayMs?: number;
  /** Maximum reconnect delay, in ms. Default 30000. */
  maxDelayMs?: number;
  /** Time a transport gets to open before the next one is tried, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** How long a transport that failed while a later one worked is skipped, in ms. Default 300000. */
  retryBetterAfterMs?: number;
  /** WebSocket constructor; default `globalThis.WebSocket`. In Node 20, pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** EventSource constructor; default `globalThis.EventSource`. */
  EventSource?: EventSourceConstructor;
  /** fetch function; default `globalThis.fetch`. */
  fetch?: FetchFunction;
}

export type ClientState = "connecting" | "connected" | "disconnected" | "closed";

export interface StateChange {
  readonly state: ClientState;
  /** The reason the client disconnected or closed. */
  readonly reason?: string;
}

export interface GapNotice {
  readonly channel: string;
  /** Delivery continues after this position. */
  readonly epoch: string;
  readonly offset: number;
}

export interface EventContext {
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
}

export type EventHandler = (data: unknown, context: EventContext) => void;

export interface ClientEvents extends Record<string, unknown> {
  state: StateChange;
  gap: GapNotice;
  error: HeraldClientError;
  transport: TransportName;
}
