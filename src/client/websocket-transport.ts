import { closeCodeForError } from "./http.js";
import { HeraldClientError, type ClientTransport, type PublishResult, type TransportHost, type WebSocketConstructor, type WebSocketLike } from "./types.js";

type ReplyHandler = { resolve(result: any): void; reject(error: HeraldClientError): void };

/**
 * The WebSocket transport: connect, then one subscribe per channel with
 * `since` when the client has a position. Replies are handled in the same
 * turn as the frames that carry them, because the recovered events follow
 * a subscribe reply in the same frame and need its position to be set.
 */
export class WebSocketClientTransport implements ClientTransport {
  readonly name = "websocket";
  private socket: WebSocketLike | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, ReplyHandler>();
  /** Channels subscribed on the server, or with a subscribe in flight ("pending"). */
  private readonly serverChannels = new Map<string, "pending" | "active">();
  private connected = false;
  private stopped = false;
  /** The error the node sent without an id before it closed, such as `token_expired`. */
  private closingError: HeraldClientError | undefined;

  constructor(
    private readonly host: TransportHost,
    private readonly WebSocketClass: WebSocketConstructor,
  ) {}

  open(): void {
    const socket = new this.WebSocketClass(`${this.host.url.replace(/^http/, "ws")}/ws`);
    this.socket = socket;
    socket.onopen = () => {
      const token = this.host.token;
      this.request({ type: "connect", ...(token === undefined ? {} : { token }) }, {
        resolve: () => {
          this.connected = true;
          this.host.opened();
          this.channelsChanged();
        },
        reject: (error) => this.stop(closeCodeForError(error.code), error.message, error),
      });
    };
    socket.onmessage = (event) => {
      for (const line of String(event.data).split("\n")) {
        if (line !== "") {
          this.handle(JSON.parse(line));
        }
      }
    };
    socket.onclose = (event) => this.stop(event.code, event.reason || this.closingError?.message || "connection closed", this.closingError);
    socket.onerror = () => {
      // A close event follows every error and carries the code.
    };
  }

  channelsChanged(): void {
    if (!this.connected) {
      return;
    }
    const wanted = new Set(this.host.channels());
    for (const channel of wanted) {
      if (!this.serverChannels.has(channel)) {
        this.subscribe(channel);
      }
    }
    for (const [channel, status] of this.serverChannels) {
      // A pending subscribe is undone when its reply arrives, because the server rejects an unsubscribe before it.
      if (!wanted.has(channel) && status === "active") {
        this.unsubscribe(channel);
      }
    }
  }

  publish(channel: string, data: unknown): Promise<PublishResult> | undefined {
    if (!this.connected) {
      return undefined;
    }
    return new Promise((resolve, reject) => this.request({ type: "publish", channel, data }, { resolve, reject }));
  }

  presence(channel: string): Promise<unknown> | undefined {
    if (!this.connected) {
      return undefined;
    }
    return new Promise((resolve, reject) => this.request({ type: "presence", channel }, { resolve, reject }));
  }

  close(): void {
    this.stopped = true;
    this.socket?.close(1000, "client closed");
    this.failPending(new HeraldClientError("closed", "The client closed the connection."));
  }

  private subscribe(channel: string): void {
    this.serverChannels.set(channel, "pending");
    const since = this.host.position(channel);
    this.request({ type: "subscribe", channel, ...(since === undefined ? {} : { since }) }, {
      resolve: (result) => {
        this.serverChannels.set(channel, "active");
        if (!this.host.channels().includes(channel)) {
          this.unsubscribe(channel);
          return;
        }
        this.host.subscribed(channel, { epoch: result.epoch, offset: result.offset });
      },
      reject: (error) => {
        this.serverChannels.delete(channel);
        if (this.host.channels().includes(channel)) {
          this.host.channelFailed(channel, new HeraldClientError(error.code, error.message, error.status, channel));
        }
      },
    });
  }

  private unsubscribe(channel: string): void {
    this.serverChannels.delete(channel);
    this.request({ type: "unsubscribe", channel }, { resolve: () => undefined, reject: () => undefined });
  }

  private request(command: Record<string, unknown>, handler: ReplyHandler): void {
    const id = this.nextId++;
    this.pending.set(id, handler);
    this.socket?.send(JSON.stringify({ id, ...command }));
  }

  private handle(message: any): void {
    switch (message.type) {
      case "reply":
      case "error": {
        if (message.id === undefined) {
          this.closingError = new HeraldClientError(message.error?.code ?? "error", message.error?.message ?? "the node reported an error");
          return;
        }
        const handler = this.pending.get(message.id);
        if (!handler) {
          return;
        }
        this.pending.delete(message.id);
        if (message.type === "reply") {
          handler.resolve(message.result);
        } else {
          handler.reject(new HeraldClientError(message.error?.code ?? "error", message.error?.message ?? "request failed"));
        }
        return;
      }
      case "pub":
        this.host.event(message.channel, message.offset, message.data);
        return;
      case "gap":
        this.host.gap(message.channel, { epoch: message.epoch, offset: message.offset });
        return;
    }
  }

  private stop(code: number, reason: string, error?: HeraldClientError): void {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    this.connected = false;
    this.socket?.close();
    this.failPending(new HeraldClientError("disconnected", `The connection closed: ${reason}`, code));
    this.host.closed({ code, reason, ...(error === undefined ? {} : { error }) });
  }

  private failPending(error: HeraldClientError): void {
    for (const handler of this.pending.values()) {
      handler.reject(error);
    }
    this.pending.clear();
  }
}
