export { HeraldClient, Subscription } from "./client.js";
export type { ClientEvents, ClientState, EventContext, EventHandler, GapNotice, HeraldClientOptions, StateChange } from "./client.js";
export { backoffDelay } from "./backoff.js";
export type { StreamPosition } from "./position.js";
export { HeraldClientError } from "./types.js";
export type { EventSourceConstructor, FetchFunction, PublishResult, TransportName, WebSocketConstructor } from "./types.js";
