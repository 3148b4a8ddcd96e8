import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/**
 * Settings are resolved in this order, each overriding the one before:
 * defaults, the config file, HERALD_* environment variables, command-line
 * flags. The result is validated once with zod and frozen.
 */

/** The longest delay Node.js timers take; a larger one fires after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;
const timerMs = () =>
  z
    .number()
    .int()
    .max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest delay a Node.js timer takes`);
const millis = (fallback: number) => timerMs().min(0).default(fallback);
const positiveMillis = (fallback: number) => timerMs().min(1).default(fallback);
const positiveInt = (fallback: number) => z.number().int().min(1).default(fallback);
const bool = (fallback: boolean) => z.boolean().default(fallback);

const namespaceSchema = z
  .object({
    /** Events kept per channel. 0 keeps no history, so resume always reports a gap. */
    historySize: z.number().int().min(0).max(1_000_000).optional(),
    /** How long a channel's history lives after its last publication, in ms. */
    historyTtlMs: timerMs().min(0).optional(),
    /** Whether clients without a token may subscribe. */
    anonymousSubscribe: z.boolean().optional(),
    /** Whether clients (not only the publish API) may publish. */
    clientPublish: z.boolean().optional(),
    /** Whether the node keeps a presence list and sends join and leave events. */
    presence: z.boolean().optional(),
  })
  .strict();

export const configSchema = z
  .object({
    /** TCP port for HTTP, WebSocket, SSE and long-polling. */
    port: z.number().int().min(0).max(65535).default(8080),
    /** Address to listen on. */
    host: z.string().min(1).default("0.0.0.0"),
    /** Name of this node in logs, metrics and /api/info; random when empty. */
    nodeId: z.string().default(""),
    broker: z.enum(["memory", "redis"]).default("memory"),
    /**
     * Processes that serve the port (node:cluster), each a full node with
     * its own hub and connections. More than 1 needs the redis broker,
     * because nodes on the memory broker do not share channels.
     */
    workers: z.number().int().min(1).max(256).default(1),
    redis: z
      .object({
        /** Standalone Redis URL. */
        url: z.string().default("redis://127.0.0.1:6379"),
        /** Redis Cluster seed nodes as host:port; when set, `url` is ignored. */
        clusterNodes: z.array(z.string()).default([]),
        /** Prefix of every key and pub/sub channel Herald uses; must not contain `{` or `}`. */
        keyPrefix: z.string().regex(/^[^{}]*$/, "must not contain { or }").default("herald:"),
        /** How long a channel's epoch and top offset outlive its last publish or read, in ms (24 h). */
        metaTtlMs: positiveMillis(86_400_000),
        /**
         * How long the epoch of a channel that was read but never published
         * to lives, in ms (5 min). Nodes renew it for channels their clients
         * subscribe to; the first publish extends it to `metaTtlMs`.
         */
        unpublishedMetaTtlMs: positiveMillis(300_000),
        /** Time a Redis command may take before it fails, in ms. */
        commandTimeoutMs: positiveMillis(2_000),
      })
      .strict()
      .prefault({}),
    /** Keys accepted by the publish API. Empty: only loopback clients may publish. */
    apiKeys: z.array(z.string().min(1)).default([]),
    /** Token for the admin page and admin API. Empty: admin is off and /admin returns 404. */
    adminToken: z.string().default(""),
    admin: z
      .object({
        /** Interval between the stats snapshots each node publishes for the admin page, in ms. */
        statsIntervalMs: positiveMillis(1_000),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Whether /metrics serves Prometheus metrics. */
        enabled: bool(true),
        /** Whether /metrics needs the admin token as a Bearer header; needs adminToken set. */
        requireAdminToken: bool(false),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /** Shared secret for HS256 tokens. Empty: HMAC tokens are not accepted. */
        hmacSecret: z.string().default(""),
        /** RSA (RS256) or P-256 (ES256) public keys, each as PEM text or a path to a PEM file. */
        publicKeys: z.array(z.string().min(1)).default([]),
        /** URL of a JSON Web Key Set with RS256 or ES256 keys. Empty: no JWKS. */
        jwksUrl: z.string().default(""),
        /** How long a fetched JWKS is used before it is fetched again, in ms. */
        jwksCacheMs: millis(600_000),
        /** Minimum time between two fetches caused by an unknown key id, in ms. */
        jwksCooldownMs: millis(30_000),
        /** Time allowed for one JWKS fetch, in ms. */
        jwksTimeoutMs: positiveMillis(5_000),
        /** Accepted `aud` values; empty: `aud` is not checked. */
        audience: z.array(z.string().min(1)).default([]),
        /** Accepted `iss` values; empty: `iss` is not checked. */
        issuer: z.array(z.string().min(1)).default([]),
        /** Clock difference tolerated when checking `exp` and `nbf`, in ms. */
        clockSkewMs: millis(30_000),
        /** Claim listing the channels or patterns the user may subscribe to. */
        subscribeClaim: z.string().min(1).default("channels"),
        /** Claim listing the channels or patterns the user may publish on. */
        publishClaim: z.string().min(1).default("publish"),
      })
      .strict()
      .prefault({}),
    cors: z
      .object({
        /** Origins (`scheme://host[:port]`) whose pages may call the HTTP endpoints; `*` allows any. Empty: same-origin only. */
        allowedOrigins: z.array(z.string().min(1)).default([]),
        /** How long a browser may cache a preflight response, in seconds. */
        maxAgeSeconds: z.number().int().min(0).default(600),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .strict()
      .prefault({}),
    websocket: z
      .object({
        /** Whether /ws accepts WebSocket upgrades; when false they get 404 and clients fall back to SSE or long-polling. */
        enabled: bool(true),
        /** Interval between server pings, in ms. */
        pingIntervalMs: millis(25_000),
        /** Pings in a row without a pong before the connection is closed. */
        missedPongs: positiveInt(2),
        /** Largest accepted client frame, in bytes. */
        maxMessageSize: positiveInt(64 * 1024),
        /** Origins allowed to open a WebSocket; `*` allows any. Empty: same-origin pages and clients that send no Origin. */
        allowedOrigins: z.array(z.string()).default([]),
        /**
         * Time events wait before they are written, in ms, so that more of
         * them share one write. 0 writes at the end of the current turn of
         * the event loop.
         */
        writeDelayMs: z.number().int().min(0).max(1_000).default(0),
      })
      .strict()
      .prefault({}),
    sse: z
      .object({
        /** Interval between heartbeat comment lines, in ms. */
        heartbeatMs: positiveMillis(15_000),
        /** Reconnect delay sent to EventSource in the `retry:` field, in ms. */
        retryMs: positiveMillis(2_000),
      })
      .strict()
      .prefault({}),
    poll: z
      .object({
        /** Maximum time a poll is held waiting for an event, in ms. */
        holdMs: positiveMillis(25_000),
        /** Most events returned by one poll. */
        batchLimit: positiveInt(1_000),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Bytes queued for one client before it is closed as a slow consumer. */
        outboundBufferBytes: positiveInt(1024 * 1024),
        /** Channels one connection may subscribe to. */
        maxChannelsPerConnection: positiveInt(128),
        /** Open connections from one IP address. */
        maxConnectionsPerIp: positiveInt(10_000),
        /** Commands per second a connection may send on average. */
        commandRate: positiveInt(100),
        /** Commands a connection may send in a burst. */
        commandBurst: positiveInt(200),
        /** Largest accepted HTTP request body, in bytes. */
        maxBodyBytes: positiveInt(1024 * 1024),
        /** Maximum number of items in one publish_batch request. */
        maxBatchItems: positiveInt(1_000),
      })
      .strict()
      .prefault({}),
    drain: z
      .object({
        /** Time active connections get to finish after draining starts, in ms. */
        timeoutMs: millis(120_000),
        /** Time between the signal and the start of draining, in ms, for load balancers to see /readyz turn 503. */
        delayMs: millis(0),
      })
      .strict()
      .prefault({}),
    /** Settings of channels whose namespace has no entry in `namespaces`. */
    defaults: namespaceSchema
      .extend({
        historySize: z.number().int().min(0).max(1_000_000).default(100),
        historyTtlMs: timerMs().min(0).default(300_000),
        clientPublish: z.boolean().default(false),
        presence: z.boolean().default(false),
      })
      .prefault({}),
    /** Per-namespace overrides, keyed by the part of the channel name before the first `:`. */
    namespaces: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), namespaceSchema).default({}),
    /** How long an idempotency key is remembered, in ms. */
    idempotencyWindowMs: millis(300_000),
    /** How long a disconnected WebSocket session can be resumed by its id, in ms. */
    sessionTtlMs: millis(300_000),
    /** Interval at which WebSocket sessions with new positions are saved, in ms. */
    sessionSaveIntervalMs: positiveMillis(1_000),
    presence: z
      .object({
        /** How long a presence entry lives without a refresh, in ms. */
        ttlMs: positiveMillis(60_000),
        /** Interval at which a node refreshes the presence entries of its connections, in ms. */
        refreshMs: positiveMillis(20_000),
      })
      .strict()
      .prefault({}),
    nodeRegistry: z
      .object({
        /** Interval between a node's heartbeats in the registry, in ms. */
        heartbeatMs: positiveMillis(5_000),
        /** How long a node stays listed after its last heartbeat, in ms. */
        ttlMs: positiveMillis(15_000),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        /** PEM certificate file; with `key`, the port serves TLS with HTTP/2 and HTTP/1.1. */
        cert: z.string().default(""),
        key: z.string().default(""),
      })
      .strict()
      .prefault({}),
    /** Serve HTTP/2 without TLS (h2c with prior knowledge) beside HTTP/1.1. */
    h2c: bool(false),
    grpc: z
      .object({
        /** Serve the gRPC API for backends. */
        enabled: bool(false),
        /** Port of the gRPC API; 0 picks a free port. */
        port: z.number().int().min(0).max(65535).default(8081),
        host: z.string().min(1).default("0.0.0.0"),
        /** PEM certificate and key files; with both set, gRPC is served over TLS. */
        cert: z.string().default(""),
        key: z.string().default(""),
        /** Interval between heartbeat events on Subscribe streams, in ms. */
        heartbeatMs: positiveMillis(15_000),
        /** Interval between HTTP/2 keepalive pings to gRPC clients, in ms. */
        keepaliveMs: positiveMillis(30_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = Readonly<z.infer<typeof configSchema>>;
export type NamespaceSettings = z.infer<typeof namespaceSchema>;

/** Raised when settings are invalid; its message names each bad setting. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Source = "default" | "file" | "env" | "flag";
type Raw = Record<string, unknown>;

/**
 * Environment variables that do not follow the generic rule. The generic rule
 * maps HERALD_WEBSOCKET_PING_INTERVAL_MS to websocket.pingIntervalMs.
 */
const ENV_ALIASES: Record<string, string> = {
  HERALD_API_KEY: "apiKeys",
  HERALD_REDIS_URL: "redis.url",
  HERALD_REDIS_CLUSTER_NODES: "redis.clusterNodes",
  HERALD_LOG_LEVEL: "log.level",
  HERALD_TLS_CERT: "tls.cert",
  HERALD_TLS_KEY: "tls.key",
  HERALD_JWT_SECRET: "auth.hmacSecret",
  HERALD_JWKS_URL: "auth.jwksUrl",
};

/**
 * HERALD_* variables that are not server settings: the CLI client, the
 * examples and the tests read them. Any other unknown HERALD_* name is rejected as a typo.
 */
const ENV_NOT_SETTINGS = new Set(["HERALD_URL", "HERALD_WS_URL", "HERALD_TOKEN", "HERALD_GRPC_ADDRESS", "HERALD_CHROMIUM"]);
const ENV_NOT_SETTINGS_PREFIX = "HERALD_TEST_";

/** Flags that take a value, mapped to their setting. */
const FLAG_PATHS: Record<string, string> = {
  port: "port",
  host: "host",
  broker: "broker",
  workers: "workers",
  "redis-url": "redis.url",
  "log-level": "log.level",
  "node-id": "nodeId",
  "api-key": "apiKeys",
  "admin-token": "adminToken",
};

export interface LoadOptions {
  /** Environment to read HERALD_* from; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Command-line arguments after the subcommand. */
  argv?: string[];
  /** Settings given by code, applied after flags (used by tests and embedders). */
  overrides?: Raw;
}

/** Resolves and validates the settings; throws ConfigError naming every invalid one. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const { flags, configPath } = parseFlags(options.argv ?? []);
  const sources = new Map<string, { source: Source; name: string }>();
  const raw: Raw = {};

  const filePath = configPath ?? env.HERALD_CONFIG;
  if (filePath) {
    const fileSettings = readConfigFile(filePath);
    mergeInto(raw, fileSettings, "", (path) => sources.set(path, { source: "file", name: filePath }));
  }

  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("HERALD_") || name === "HERALD_CONFIG" || value === undefined) {
      continue;
    }
    if (ENV_NOT_SETTINGS.has(name) || name.startsWith(ENV_NOT_SETTINGS_PREFIX)) {
      continue;
    }
    const path = ENV_ALIASES[name] ?? envNameToPath(name);
    if (path === undefined) {
      throw new ConfigError(`Unknown environment variable ${name}: no setting matches it.`);
    }
    setPath(raw, path, coerce(path, value));
    sources.set(path, { source: "env", name });
  }

  for (const { path, value, flag } of flags) {
    setPath(raw, path, coerce(path, value));
    sources.set(path, { source: "flag", name: flag });
  }

  if (options.overrides) {
    mergeInto(raw, options.overrides, "", () => undefined);
  }

  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const lines = result.error.issues.flatMap((issue) => describeIssue(issue, sources));
    throw new ConfigError(`Invalid settings:\n${lines.join("\n")}`);
  }
  if (result.data.workers > 1 && result.data.broker === "memory") {
    const origin = originOf("workers", sources);
    throw new ConfigError(
      `Invalid settings:\n  workers${origin}: got ${result.data.workers}; more than 1 worker needs broker redis, ` +
        "because workers on the memory broker would not share channels. Set --broker redis, or use 1 worker.",
    );
  }
  return deepFreeze(result.data);
}

/** Formats one zod issue as lines naming the setting, where it came from, the value and what is allowed. */
function describeIssue(issue: z.core.$ZodIssue, sources: Map<string, { name: string }>): string[] {
  const base = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const path = [...base, key].join(".");
      return `  ${path}${originOf(path, sources)}: unknown setting; see docs/configuration.md for the settings.`;
    });
  }
  const path = base.join(".");
  const given = "input" in issue ? ` got ${JSON.stringify(issue.input)};` : "";
  return [`  ${path || "(root)"}${originOf(path, sources)}:${given} ${issue.message}`];
}

/** Names the file, variable or flag that set `path` or the group that contains it. */
function originOf(path: string, sources: Map<string, { name: string }>): string {
  for (let end = path.length; end > 0; end = path.lastIndexOf(".", end - 1)) {
    const origin = sources.get(path.slice(0, end));
    if (origin) {
      return ` (from ${origin.name})`;
    }
  }
  return "";
}

function readConfigFile(path: string): Raw {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = extname(path) === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(`Config file ${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) {
    return {};
  }
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`Config file ${path} must contain a mapping of settings at the top level.`);
  }
  return parsed as Raw;
}

interface FlagSetting {
  path: string;
  value: string;
  /** The flag as given, for error messages. */
  flag: string;
}

function parseFlags(argv: string[]): { flags: FlagSetting[]; configPath: string | undefined } {
  const flags: FlagSetting[] = [];
  let configPath: string | undefined;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      throw new ConfigError(`Unexpected argument ${JSON.stringify(arg)}; settings are given as --name value.`);
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (name !== "config" && name !== "set" && FLAG_PATHS[name] === undefined) {
      throw new ConfigError(`Unknown flag --${name}. Known flags: --config, --set, ${Object.keys(FLAG_PATHS).map((f) => `--${f}`).join(", ")}.`);
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) {
      throw new ConfigError(`Flag --${name} needs a value.`);
    }

    if (name === "config") {
      configPath = value;
    } else if (name === "set") {
      const split = value.indexOf("=");
      if (split <= 0) {
        throw new ConfigError(`--set takes path=value, for example --set websocket.pingIntervalMs=10000; got ${JSON.stringify(value)}.`);
      }
      const path = value.slice(0, split);
      flags.push({ path, value: value.slice(split + 1), flag: `--set ${path}` });
    } else {
      flags.push({ path: FLAG_PATHS[name]!, value, flag: `--${name}` });
    }
  }
  return { flags, configPath };
}

/** Maps HERALD_A_B_C to a setting path by trying every split of the words against the schema. */
function envNameToPath(name: string): string | undefined {
  const words = name.slice("HERALD_".length).toLowerCase().split("_");
  return matchWords(words, configSchema.shape as Record<string, z.ZodType>, "");
}

function matchWords(words: string[], shape: Record<string, z.ZodType>, prefix: string): string | undefined {
  for (const key of Object.keys(shape)) {
    const keyWords = key.replace(/([A-Z])/g, "_$1").toLowerCase().split("_");
    const head = words.slice(0, keyWords.length).join("_");
    if (head !== keyWords.join("_")) {
      continue;
    }
    const rest = words.slice(keyWords.length);
    if (rest.length === 0) {
      return prefix + key;
    }
    const inner = objectShape(shape[key]!);
    if (inner) {
      const found = matchWords(rest, inner, `${prefix}${key}.`);
      if (found) {
        return found;
      }
    }
  }
  return undefined;
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current: unknown = schema;
  // Unwrap default, prefault and optional wrappers to reach the object.
  for (let depth = 0; depth < 5 && current; depth++) {
    const def = (current as { def?: { type?: string; innerType?: unknown; shape?: Record<string, z.ZodType> } }).def;
    if (!def) {
      return undefined;
    }
    if (def.type === "object") {
      return def.shape;
    }
    current = def.innerType;
  }
  return undefined;
}

/** Turns a string from the environment or a flag into the type its setting expects. */
function coerce(path: string, value: string): unknown {
  const leaf = leafSchema(path);
  const type = leaf ? baseType(leaf) : undefined;

  if (type === "number") {
    const trimmed = value.trim();
    return trimmed === "" || !/^-?\d+(\.\d+)?$/.test(trimmed) ? value : Number(trimmed);
  }
  if (type === "boolean") {
    if (/^(true|1|yes|on)$/i.test(value)) return true;
    if (/^(false|0|no|off)$/i.test(value)) return false;
    return value;
  }
  if (type === "array") {
    return value.split(",").map((item) => item.trim()).filter((item) => item !== "");
  }
  return value;
}

function leafSchema(path: string): z.ZodType | undefined {
  let shape: Record<string, z.ZodType> | undefined = configSchema.shape as Record<string, z.ZodType>;
  const parts = path.split(".");
  for (let i = 0; i < parts.length; i++) {
    const node: z.ZodType | undefined = shape?.[parts[i]!];
    if (!node) {
      return undefined;
    }
    if (i === parts.length - 1) {
      return node;
    }
    const entries = recordValues(node);
    if (entries) {
      // A record level (namespaces.<name>) consumes one part of the path.
      i++;
      if (i === parts.length - 1) {
        return entries;
      }
      shape = objectShape(entries);
    } else {
      shape = objectShape(node);
    }
  }
  return undefined;
}

/** Returns the value schema of a record under its default wrappers, or undefined for other schemas. */
function recordValues(schema: z.ZodType): z.ZodType | undefined {
  let current: unknown = schema;
  for (let depth = 0; depth < 5 && current; depth++) {
    const def = (current as { def?: { type?: string; innerType?: unknown; valueType?: z.ZodType } }).def;
    if (!def) {
      return undefined;
    }
    if (def.type === "record") {
      return def.valueType;
    }
    current = def.innerType;
  }
  return undefined;
}

function baseType(schema: z.ZodType): string | undefined {
  let current: unknown = schema;
  for (let depth = 0; depth < 5 && current; depth++) {
    const def = (current as { def?: { type?: string; innerType?: unknown } }).def;
    if (!def) {
      return undefined;
    }
    if (def.type !== "default" && def.type !== "optional" && def.type !== "prefault") {
      return def.type;
    }
    current = def.innerType;
  }
  return undefined;
}

function setPath(target: Raw, path: string, value: unknown): void {
  const parts = path.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== "object" || next === null || Array.isArray(next)) {
      node[part] = {};
    }
    node = node[part] as Raw;
  }
  node[parts[parts.length - 1]!] = value;
}

function mergeInto(target: Raw, source: Raw, prefix: string, record: (path: string) => void): void {
  for (const [key, value] of Object.entries(source)) {
    if (key === "__proto__" || key === "constructor" || key === "prototype") {
      throw new ConfigError(`Setting name ${JSON.stringify(prefix + key)} is not allowed.`);
    }
    const path = prefix + key;
    if (typeof value === "object" && value !== null && !Array.isArray(value) && key !== "namespaces") {
      const existing = target[key];
      if (typeof existing !== "object" || existing === null || Array.isArray(existing)) {
        target[key] = {};
      }
      mergeInto(target[key] as Raw, value as Raw, `${path}.`, record);
    } else {
      target[key] = value;
      record(path);
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) {
      deepFreeze(inner);
    }
    Object.freeze(value);
  }
  return value;
}
