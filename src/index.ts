export { HeraldServer } from "./server.js";
export type { HeraldOptions } from "./server.js";
export { loadConfig, configSchema, ConfigError } from "./config.js";
export type { Config, LoadOptions } from "./config.js";
export { MemoryBroker } from "./broker/memory-broker.js";
export { RedisBroker } from "./broker/redis/redis-broker.js";
export type { RedisBrokerSettings } from "./broker/redis/redis-broker.js";
export { createBroker } from "./broker/create-broker.js";
export type {
  Broker,
  Publication,
  StreamPosition,
  HistoryResult,
  PresenceEntry,
  PresenceEvent,
  NodeInfo,
} from "./broker/broker.js";
export { ERRORS, HeraldError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { encodeCursor, decodeCursor } from "./cursor.js";
export { HeraldEvents } from "./events.js";
export type { HeraldEvent, HeraldEventType } from "./events.js";
export type { LifecycleEvent, LifecycleListener, NodeState } from "./lifecycle.js";
export { AnonymousAuthenticator } from "./auth/identity.js";
export type { Authenticator, Identity } from "./auth/identity.js";
export { JwtAuthenticator, createAuthenticator } from "./auth/jwt.js";
