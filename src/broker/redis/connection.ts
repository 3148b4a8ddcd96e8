import { Cluster, Redis, type RedisOptions } from "ioredis";
import {
  HISTORY_SCRIPT,
  NODE_LIST_SCRIPT,
  NODE_REGISTER_SCRIPT,
  PRESENCE_ADD_SCRIPT,
  PRESENCE_LIST_SCRIPT,
  PRESENCE_REMOVE_SCRIPT,
  PUBLISH_SCRIPT,
} from "./scripts.js";

export interface RedisConnectionSettings {
  /** Standalone Redis URL; ignored when clusterNodes is not empty. */
  readonly url: string;
  /** Redis Cluster seed nodes as host:port. */
  readonly clusterNodes: readonly string[];
  /** Time a command may take before it fails, in ms. */
  readonly commandTimeoutMs: number;
  /** CLIENT SETNAME of the connections; the subscriber adds `:subscriber`. Defaults to `herald`. */
  readonly connectionName?: string;
}

type Reply = unknown;

/** The commands the engine adds with defineCommand, one per Lua script. */
export interface HeraldCommands {
  heraldPublish(...args: Array<string | number>): Promise<Reply>;
  heraldHistory(...args: Array<string | number>): Promise<Reply>;
  heraldPresenceAdd(...args: Array<string | number>): Promise<Reply>;
  heraldPresenceRemove(...args: Array<string | number>): Promise<Reply>;
  heraldPresenceList(...args: Array<string | number>): Promise<Reply>;
  heraldNodeRegister(...args: Array<string | number>): Promise<Reply>;
  heraldNodeList(...args: Array<string | number>): Promise<Reply>;
}

export type CommandClient = (Redis | Cluster) & HeraldCommands;

/** Delay before the next reconnect attempt: 100 ms doubling up to 2 s. */
function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.max(attempt - 1, 0), 2_000);
}

/**
 * Options shared by every connection. Commands fail at once while the
 * connection is down (no offline queue) and are never resent after a
 * reconnect. A resent publish could be stored twice, while a failed one
 * gets a 503 and the caller retries it with its idempotency key.
 */
function baseOptions(settings: RedisConnectionSettings, role: string): RedisOptions {
  const name = settings.connectionName ?? "herald";
  return {
    // CLIENT SETNAME takes no spaces.
    connectionName: (role === "" ? name : `${name}:${role}`).replace(/\s/g, "_"),
    commandTimeout: settings.commandTimeoutMs,
    connectTimeout: Math.max(settings.commandTimeoutMs, 1_000),
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    lazyConnect: true,
  };
}

/** Creates the connection (or cluster client) for commands, with Herald's scripts defined. */
export function createCommandClient(settings: RedisConnectionSettings): CommandClient {
  const options = baseOptions(settings, "");
  let client: Redis | Cluster;
  if (settings.clusterNodes.length > 0) {
    const { enableOfflineQueue, lazyConnect, ...redisOptions } = options;
    client = new Cluster(parseNodes(settings.clusterNodes), {
      enableAutoPipelining: true,
      enableOfflineQueue,
      lazyConnect,
      redisOptions,
      clusterRetryStrategy: reconnectDelay,
    });
  } else {
    client = new Redis(settings.url, { ...options, enableAutoPipelining: true, retryStrategy: reconnectDelay });
  }
  defineScripts(client);
  return client as CommandClient;
}

/**
 * Creates the node's subscriber: one connection on standalone Redis, and
 * on a cluster one sharded subscriber connection per master, managed by
 * ioredis. On standalone Redis the engine subscribes again after a
 * reconnect itself (autoResubscribe off), so that it can tell when
 * delivery is back. On a cluster, ioredis subscribes the shards again.
 */
export function createSubscriberClient(settings: RedisConnectionSettings): Redis | Cluster {
  const options: RedisOptions = { ...baseOptions(settings, "subscriber"), autoResubscribe: false };
  if (settings.clusterNodes.length > 0) {
    const { enableOfflineQueue, lazyConnect, ...redisOptions } = options;
    return new Cluster(parseNodes(settings.clusterNodes), {
      shardedSubscribers: true,
      enableOfflineQueue,
      lazyConnect,
      redisOptions,
      clusterRetryStrategy: reconnectDelay,
    });
  }
  return new Redis(settings.url, { ...options, retryStrategy: reconnectDelay });
}

function defineScripts(client: Redis | Cluster): void {
  client.defineCommand("heraldPublish", { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
  client.defineCommand("heraldHistory", { numberOfKeys: 2, lua: HISTORY_SCRIPT });
  client.defineCommand("heraldPresenceAdd", { numberOfKeys: 2, lua: PRESENCE_ADD_SCRIPT });
  client.defineCommand("heraldPresenceRemove", { numberOfKeys: 2, lua: PRESENCE_REMOVE_SCRIPT });
  client.defineCommand("heraldPresenceList", { numberOfKeys: 2, lua: PRESENCE_LIST_SCRIPT });
  client.defineCommand("heraldNodeRegister", { numberOfKeys: 2, lua: NODE_REGISTER_SCRIPT });
  client.defineCommand("heraldNodeList", { numberOfKeys: 2, lua: NODE_LIST_SCRIPT });
}

function parseNodes(nodes: readonly string[]): Array<{ host: string; port: number }> {
  return nodes.map((node) => {
    const colon = node.lastIndexOf(":");
    const host = colon === -1 ? node : node.slice(0, colon);
    const port = colon === -1 ? 6379 : Number(node.slice(colon + 1));
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`Invalid Redis Cluster node ${JSON.stringify(node)}; use host:port.`);
    }
    return { host, port };
  });
}
