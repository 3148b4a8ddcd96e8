import { validateChannel } from "../channel.js";
import { backoffDelay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { publishOverHttp } from "./http.js";
import { PollClientTransport } from "./poll-transport.js";
import { ChannelPosition, type StreamPosition } from "./position.js";
import { SseClientTransport } from "./sse-transport.js";
import {
  HeraldClientError,
  type ClientEvents,
  type ClientState,
  type ClientTransport,
  type CloseInfo,
  type EventContext,
  type EventHandler,
  type EventSourceConstructor,
  type FetchFunction,
  type HeraldClientOptions,
  type PublishResult,
  type TransportHost,
  type TransportName,
  type WebSocketConstructor,
} from "./types.js";
import { WebSocketClientTransport } from "./websocket-transport.js";

/** Close codes after which reconnecting cannot help: the token or the channel is refused. */
const FATAL_CLOSE_CODES: Record<number, string> = { 4001: "unauthorized", 4003: "forbidden" };

const DEFAULT_TRANSPORTS: TransportName[] = ["websocket", "sse", "poll"];

/** One application's interest in one channel. */
export class Subscription {
  constructor(
    readonly channel: string,
    private readonly remove: () => void,
  ) {}

  unsubscribe(): void {
    this.remove();
  }
}

interface ChannelEntry {
  readonly handlers: Set<EventHandler>;
  readonly position: ChannelPosition;
}

/**
 * A Herald client. One transport at a time carries every channel. When a
 * transport cannot open, the client tries the next one in its list. It
 * reconnects with jittered exponential backoff, resumes each channel from
 * its last position, drops repeated events and reports gaps.
 */
export class HeraldClient extends Emitter<ClientEvents> {
  private readonly url: string;
  private token: string | undefined;
  private readonly getToken: (() => string | Promise<string>) | undefined;
  private readonly order: TransportName[];
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly connectTimeoutMs: number;
  private readonly retryBetterAfterMs: number;
  private readonly WebSocketClass: WebSocketConstructor | undefined;
  private readonly EventSourceClass: EventSourceConstructor | undefined;
  private readonly fetchFunction: FetchFunction;

  private readonly entries = new Map<string, ChannelEntry>();
  private transport: ClientTransport | undefined;
  private transportOpen = false;
  private currentState: ClientState = "connecting";
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Transports skipped until the given time, because they failed while a later one worked. */
  private readonly blockedUntil = new Map<TransportName, number>();
  /** Transports that failed to open since the last one that opened. */
  private failedInCycle: TransportName[] = [];
  private syncScheduled = false;

  constructor(options: HeraldClientOptions) {
    super();
    this.url = options.url.replace(/\/+$/, "").replace(/^ws/, "http");
    this.token = options.token;
    this.getToken = options.getToken;
    this.order = options.transports ?? DEFAULT_TRANSPORTS;
    this.minDelayMs = options.minDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.retryBetterAfterMs = options.retryBetterAfterMs ?? 300_000;
    const globals = globalThis as { WebSocket?: WebSocketConstructor; EventSource?: EventSourceConstructor };
    this.WebSocketClass = options.WebSocket ?? globals.WebSocket;
    this.EventSourceClass = options.EventSource ?? globals.EventSource;
    this.fetchFunction = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    if (this.candidates().length === 0) {
      throw new HeraldClientError("no_transport", "None of the requested transports is available here; pass a WebSocket or EventSource constructor.");
    }
    // Connecting after the current turn lets the caller attach listeners and subscribe first.
    setTimeout(() => this.connect(this.candidates()[0]!), 0);
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The transport in use, once one is open. */
  get transportName(): TransportName | undefined {
    return this.transportOpen ? this.transport?.name : undefined;
  }

  /** Returns the last position handled in a channel, to store and pass back as `since` later. */
  position(channel: string): StreamPosition | undefined {
    return this.entries.get(channel)?.position.position;
  }

  /**
   * Calls `handler` for every event of `channel`. With `since`, starts after
   * that position (from a previous session); otherwise from now on.
   */
  subscribe(channel: string, handler: EventHandler, options: { since?: StreamPosition } = {}): Subscription {
    validateChannel(channel);
    let entry = this.entries.get(channel);
    if (!entry) {
      entry = { handlers: new Set(), position: new ChannelPosition(options.since) };
      this.entries.set(channel, entry);
      this.scheduleSync();
    }
    entry.handlers.add(handler);
    const subscribed = entry;
    return new Subscription(channel, () => {
      subscribed.handlers.delete(handler);
      if (subscribed.handlers.size === 0 && this.entries.get(channel) === subscribed) {
        this.entries.delete(channel);
        this.scheduleSync();
      }
    });
  }

  /** Publishes on a channel the namespace lets clients publish on; over WebSocket when open, else over HTTP. */
  async publish(channel: string, data: unknown): Promise<PublishResult> {
    validateChannel(channel);
    const sent = this.transportOpen ? this.transport?.publish?.(channel, data) : undefined;
    return sent ?? publishOverHttp(this.httpTarget(), channel, data);
  }

  /** Lists the clients present in a channel; needs the WebSocket transport and presence on the namespace. */
  async presence(channel: string): Promise<unknown> {
    validateChannel(channel);
    const listed = this.transportOpen ? this.transport?.presence?.(channel) : undefined;
    if (listed === undefined) {
      throw new HeraldClientError("presence_unavailable", "Presence needs an open WebSocket transport.");
    }
    return listed;
  }

  /** Closes the client for good. */
  close(): void {
    this.shutdown("closed by the application");
  }

  private httpTarget() {
    return { url: this.url, token: this.token, fetch: this.fetchFunction };
  }

  /** Transports in order that can run here and are not skipped; all that can run if every one is skipped. */
  private candidates(): TransportName[] {
    const runnable = this.order.filter((name) => this.canRun(name));
    const now = Date.now();
    const preferred = runnable.filter((name) => (this.blockedUntil.get(name) ?? 0) <= now);
    return preferred.length > 0 ? preferred : runnable;
  }

  private canRun(name: TransportName): boolean {
    if (name === "websocket") {
      return this.WebSocketClass !== undefined;
    }
    if (name === "sse") {
      return this.EventSourceClass !== undefined;
    }
    return true;
  }

  private connect(name: TransportName): void {
    if (this.currentState === "closed") {
      return;
    }
    const transport = this.createTransport(name);
    this.transport = transport;
    this.transportOpen = false;
    this.setState("connecting");
    this.openTimer = setTimeout(() => {
      transport.close();
      this.transportClosed(transport, { code: 1006, reason: `${name} did not open within ${this.connectTimeoutMs} ms` });
    }, this.connectTimeoutMs);
    try {
      transport.open();
    } catch (error) {
      // A constructor can throw, for example on a URL the page's security policy blocks.
      this.transportClosed(transport, { code: 1006, reason: `${name} could not start: ${String(error)}` });
    }
  }

  private createTransport(name: TransportName): ClientTransport {
    let transport: ClientTransport | undefined;
    const current = () => transport !== undefined && this.transport === transport;
    const host: TransportHost = {
      ...this.httpTarget(),
      channels: () => [...this.entries.keys()].sort(),
      position: (channel) => this.position(channel),
      opened: () => current() && this.transportOpened(transport!),
      subscribed: (channel, position) => {
        const entry = this.entries.get(channel);
        if (current() && entry && entry.position.position === undefined) {
          entry.position.moveTo(position);
        }
      },
      event: (channel, offset, data) => current() && this.deliver(channel, offset, data),
      gap: (channel, position) => current() && this.gap(channel, position),
      setPosition: (channel, position) => {
        if (current()) {
          this.entries.get(channel)?.position.moveTo(position);
        }
      },
      channelFailed: (_channel, error) => current() && this.emit("error", error),
      closed: (info) => current() && this.transportClosed(transport!, info),
    };
    if (name === "websocket") {
      transport = new WebSocketClientTransport(host, this.WebSocketClass!);
    } else if (name === "sse") {
      transport = new SseClientTransport(host, this.EventSourceClass!);
    } else {
      transport = new PollClientTransport(host);
    }
    return transport;
  }

  private transportOpened(transport: ClientTransport): void {
    clearTimeout(this.openTimer);
    this.transportOpen = true;
    this.attempt = 0;
    const until = Date.now() + this.retryBetterAfterMs;
    for (const name of this.failedInCycle) {
      this.blockedUntil.set(name, until);
    }
    this.failedInCycle = [];
    this.setState("connected");
    this.emit("transport", transport.name);
    this.scheduleUpgrade(transport);
  }

  /**
   * Plans a retry of the better transports that are skipped now: when the
   * first one's skip ends, the client leaves the open transport and starts
   * over from the best. Positions make the switch lose nothing.
   */
  private scheduleUpgrade(transport: ClientTransport): void {
    clearTimeout(this.upgradeTimer);
    const better = this.order.slice(0, this.order.indexOf(transport.name)).filter((name) => this.canRun(name));
    const ends = better.map((name) => this.blockedUntil.get(name) ?? 0);
    if (ends.length === 0) {
      return;
    }
    const delay = Math.max(0, Math.min(...ends) - Date.now());
    this.upgradeTimer = setTimeout(() => {
      if (this.transport === transport && this.transportOpen) {
        this.transport = undefined;
        this.transportOpen = false;
        transport.close();
        this.connect(this.candidates()[0]!);
      }
    }, delay);
  }

  private transportClosed(transport: ClientTransport, info: CloseInfo): void {
    if (this.transport !== transport) {
      return;
    }
    clearTimeout(this.openTimer);
    clearTimeout(this.upgradeTimer);
    this.transport = undefined;
    const wasOpen = this.transportOpen;
    this.transportOpen = false;
    if (this.currentState === "closed") {
      return;
    }

    if (info.error?.code === "token_expired" && this.getToken !== undefined) {
      this.renewToken(info);
      return;
    }
    const fatal = FATAL_CLOSE_CODES[info.code];
    if (fatal !== undefined) {
      this.shutdown(info.reason, info.error ?? new HeraldClientError(fatal, info.reason, info.code));
      return;
    }
    if (!wasOpen && this.tryNextTransport(transport.name)) {
      return;
    }

    this.setState("disconnected", info.reason);
    const delay = backoffDelay(this.attempt++, this.minDelayMs, this.maxDelayMs);
    this.reconnectTimer = setTimeout(() => this.connect(this.candidates()[0]!), delay);
  }

  /**
   * Asks `getToken` for a new token and reconnects with it, after the
   * backoff delay, so a token source that keeps returning expired tokens
   * does not make the client spin. Closes the client when `getToken` fails.
   */
  private renewToken(info: CloseInfo): void {
    this.setState("disconnected", info.reason);
    const delay = backoffDelay(this.attempt++, this.minDelayMs, this.maxDelayMs);
    const renewed = (async () => this.getToken!())();
    renewed.then(
      (token) => {
        if (this.currentState === "closed") {
          return;
        }
        this.token = token;
        this.reconnectTimer = setTimeout(() => this.connect(this.candidates()[0]!), delay);
      },
      (error: unknown) => {
        const failure = new HeraldClientError("token_expired", `The token expired and getToken failed: ${String(error)}`, info.code);
        this.shutdown(failure.message, failure);
      },
    );
  }

  /** Connects the transport after `failed` in the list; returns false when none is left. */
  private tryNextTransport(failed: TransportName): boolean {
    this.failedInCycle.push(failed);
    const candidates = this.candidates();
    const index = candidates.indexOf(failed);
    const next = index < 0 ? undefined : candidates[index + 1];
    if (next !== undefined) {
      this.connect(next);
      return true;
    }
    // Every transport failed, so none is known to be worse than another.
    this.failedInCycle = [];
    return false;
  }

  private deliver(channel: string, offset: number, data: unknown): void {
    const entry = this.entries.get(channel);
    if (!entry || !entry.position.advance(offset)) {
      return;
    }
    const context: EventContext = { channel, epoch: entry.position.position!.epoch, offset };
    for (const handler of [...entry.handlers]) {
      try {
        handler(data, context);
      } catch (error) {
        this.emit("error", new HeraldClientError("handler_failed", `A handler of ${channel} threw: ${String(error)}`, undefined, channel));
      }
    }
  }

  private gap(channel: string, position: StreamPosition): void {
    const entry = this.entries.get(channel);
    if (!entry) {
      return;
    }
    entry.position.moveTo(position);
    this.emit("gap", { channel, epoch: position.epoch, offset: position.offset });
  }

  /** Tells the transport about channel changes once per turn, so subscribes made together travel together. */
  private scheduleSync(): void {
    if (this.syncScheduled) {
      return;
    }
    this.syncScheduled = true;
    queueMicrotask(() => {
      this.syncScheduled = false;
      this.transport?.channelsChanged();
    });
  }

  private shutdown(reason: string, error?: HeraldClientError): void {
    if (this.currentState === "closed") {
      return;
    }
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.openTimer);
    clearTimeout(this.upgradeTimer);
    const transport = this.transport;
    this.transport = undefined;
    this.transportOpen = false;
    transport?.close();
    this.currentState = "closed";
    if (error !== undefined) {
      this.emit("error", error);
    }
    this.emit("state", { state: "closed", reason });
  }

  private setState(state: ClientState, reason?: string): void {
    if (this.currentState === state) {
      return;
    }
    this.currentState = state;
    this.emit("state", reason === undefined ? { state } : { state, reason });
  }
}
