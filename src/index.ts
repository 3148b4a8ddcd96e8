export { HeraldServer } from "./server.js";
export type { HeraldOptions } from "./server.js";
export { loadConfig, configSchema, ConfigError } from "./config.js";
export type { Config, LoadOptions } from "./config.js";
export { MemoryBroker } from "./broker/memory-broker.js";
export type { Broker, Publication, StreamPosition, HistoryResult, PresenceEntry } from "./broker/broker.js";
export { ERRORS, HeraldError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { encodeCursor, decodeCursor } from "./cursor.js";
