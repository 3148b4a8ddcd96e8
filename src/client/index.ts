export { HeraldClient, Subscription } from "./client.js";
export { backoffDelay } from "./backoff.js";
export type { StreamPosition } from "./position.js";
export { HeraldClientError } from "./types.js";
export type {
  ClientEvents,
  ClientState,
  EventContext,
  EventHandler,
  EventSourceConstructor,
  FetchFunction,
  GapNotice,
  HeraldClientOptions,
  PublishResult,
  StateChange,
  TransportName,
  WebSocketConstructor,
} from "./types.js";
