import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ConfigError, loadConfig } from "./config.js";

const dir = mkdtempSync(join(tmpdir(), "herald-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function writeFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Returns the ConfigError message that loading with these options raises. */
function configError(options: Parameters<typeof loadConfig>[0]): string {
  try {
    loadConfig(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail("expected loadConfig to throw");
}

describe("loadConfig", () => {
  test("defaults match the design", () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.port, 8080);
    assert.equal(config.broker, "memory");
    assert.equal(config.websocket.pingIntervalMs, 25_000);
    assert.equal(config.websocket.missedPongs, 2);
    assert.equal(config.websocket.maxMessageSize, 65_536);
    assert.equal(config.sse.heartbeatMs, 15_000);
    assert.equal(config.poll.holdMs, 25_000);
    assert.equal(config.drain.timeoutMs, 120_000);
    assert.equal(config.defaults.historySize, 100);
    assert.equal(config.defaults.historyTtlMs, 300_000);
    assert.equal(config.limits.outboundBufferBytes, 1_048_576);
    assert.deepEqual(config.apiKeys, []);
  });

  test("workers above 1 need redis", () => {
    assert.throws(() => loadConfig({ env: {}, argv: ["--workers", "2"] }), /workers \(from --workers\): got 2; more than 1 worker needs broker redis/);
    assert.equal(loadConfig({ env: {}, argv: ["--workers", "2", "--broker", "redis"] }).workers, 2);
    assert.equal(loadConfig({ env: {} }).workers, 1);
  });

  test("result is frozen", () => {
    const config = loadConfig({ env: {} });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.websocket));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  test("precedence is defaults, file, env, flags", () => {
    const file = writeFile(
      "order.yaml",
      ["port: 1001", "host: 127.0.0.2", "nodeId: from-file", "websocket:", "  missedPongs: 5", "  pingIntervalMs: 111"].join("\n"),
    );
    const env = { HERALD_CONFIG: file, HERALD_PORT: "1002", HERALD_NODE_ID: "from-env", HERALD_WEBSOCKET_MISSED_PONGS: "6" };

    const fileOnly = loadConfig({ env: { HERALD_CONFIG: file } });
    assert.equal(fileOnly.port, 1001);
    assert.equal(fileOnly.websocket.missedPongs, 5);
    assert.equal(fileOnly.sse.heartbeatMs, 15_000, "settings the file leaves out keep their default");

    const withEnv = loadConfig({ env });
    assert.equal(withEnv.port, 1002);
    assert.equal(withEnv.nodeId, "from-env");
    assert.equal(withEnv.websocket.missedPongs, 6);
    assert.equal(withEnv.websocket.pingIntervalMs, 111, "env overrides one setting, not its whole group");
    assert.equal(withEnv.host, "127.0.0.2");

    const withFlags = loadConfig({ env, argv: ["--port", "1003", "--set", "websocket.missedPongs=7"] });
    assert.equal(withFlags.port, 1003);
    assert.equal(withFlags.websocket.missedPongs, 7);
    assert.equal(withFlags.nodeId, "from-env");
  });

  test("--config flag wins over HERALD_CONFIG", () => {
    const fromEnv = writeFile("env.yaml", "port: 2001\n");
    const fromFlag = writeFile("flag.yaml", "port: 2002\n");
    const config = loadConfig({ env: { HERALD_CONFIG: fromEnv }, argv: ["--config", fromFlag] });
    assert.equal(config.port, 2002);
  });

  test("JSON and YAML files give the same settings", () => {
    const settings = { port: 3000, apiKeys: ["k1"], namespaces: { chat: { historySize: 10, clientPublish: true } } };
    const json = writeFile("same.json", JSON.stringify(settings));
    const yaml = writeFile(
      "same.yml",
      ["port: 3000", "apiKeys: [k1]", "namespaces:", "  chat:", "    historySize: 10", "    clientPublish: true"].join("\n"),
    );
    const fromJson = loadConfig({ env: {}, argv: ["--config", json] });
    const fromYaml = loadConfig({ env: {}, argv: ["--config", yaml] });
    assert.deepEqual(fromJson, fromYaml);
    assert.equal(fromJson.port, 3000);
    assert.deepEqual(fromJson.namespaces.chat, { historySize: 10, clientPublish: true });
  });

  test("env values are coerced to their types", () => {
    const config = loadConfig({
      env: {
        HERALD_H2C: "yes",
        HERALD_API_KEY: "a, b",
        HERALD_WEBSOCKET_ALLOWED_ORIGINS: "https://a.example,https://b.example",
        HERALD_REDIS_URL: "redis://127.0.0.1:7000",
        HERALD_LOG_LEVEL: "warn",
        HERALD_DRAIN_TIMEOUT_MS: "5000",
      },
    });
    assert.equal(config.h2c, true);
    assert.deepEqual(config.apiKeys, ["a", "b"]);
    assert.deepEqual(config.websocket.allowedOrigins, ["https://a.example", "https://b.example"]);
    assert.equal(config.redis.url, "redis://127.0.0.1:7000");
    assert.equal(config.log.level, "warn");
    assert.equal(config.drain.timeoutMs, 5000);
  });

  test("--set reaches namespace settings", () => {
    const config = loadConfig({ env: {}, argv: ["--set", "namespaces.chat.historySize=3", "--set", "namespaces.chat.presence=true"] });
    assert.equal(config.namespaces.chat?.historySize, 3);
    assert.equal(config.namespaces.chat?.presence, true);
  });

  test("variables of the CLI and tests are not settings", () => {
    const config = loadConfig({ env: { HERALD_URL: "http://x", HERALD_WS_URL: "ws://x", HERALD_TOKEN: "t", HERALD_GRPC_ADDRESS: "127.0.0.1:1", HERALD_TEST_LOG: "debug" } });
    assert.equal(config.port, 8080);
  });

  test("invalid flag names setting, value and rule", () => {
    const message = configError({ env: {}, argv: ["--port", "abc"] });
    assert.match(message, /port \(from --port\)/);
    assert.match(message, /"abc"/);
    assert.match(message, /expected number/);
  });

  test("invalid env variable names setting, value and rule", () => {
    const message = configError({ env: { HERALD_WEBSOCKET_MISSED_PONGS: "0" } });
    assert.match(message, /websocket\.missedPongs \(from HERALD_WEBSOCKET_MISSED_PONGS\)/);
    assert.match(message, /got 0/);
    assert.match(message, />=1/);
  });

  test("invalid file setting names the file", () => {
    const file = writeFile("bad.yaml", "log:\n  level: loud\nnamespaces:\n  chat:\n    historySize: -1\n");
    const message = configError({ env: {}, argv: ["--config", file] });
    assert.match(message, new RegExp(`log\\.level \\(from ${file.replace(/[.]/g, "\\.")}\\): got "loud"`));
    assert.match(message, /"fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"\|"silent"/);
    assert.match(message, /namespaces\.chat\.historySize \(from .*bad\.yaml\): got -1/);
  });

  test("port out of range is rejected", () => {
    const message = configError({ env: {}, argv: ["--port=70000"] });
    assert.match(message, /port \(from --port\): got 70000/);
    assert.match(message, /<=65535/);
  });

  test("ms settings are capped at the timer maximum", () => {
    const paths = [...millisecondPaths(loadConfig({ env: {} }) as unknown as Record<string, unknown>, ""), "namespaces.chat.historyTtlMs"];
    assert.ok(paths.includes("websocket.pingIntervalMs"));
    assert.ok(paths.includes("drain.timeoutMs"));
    // Settings with a lower maximum of their own reject the timer maximum too, by that maximum.
    const ownMaximum = new Set(["websocket.writeDelayMs"]);
    for (const path of paths) {
      const message = configError({ env: {}, argv: ["--set", `${path}=2147483648`] });
      assert.match(message, new RegExp(`${path.replace(/\./g, "\\.")} \\(from --set ${path.replace(/\./g, "\\.")}\\): got 2147483648`));
      if (ownMaximum.has(path)) {
        continue;
      }
      assert.match(message, /must be at most 2147483647 ms/);
      assert.doesNotThrow(() => loadConfig({ env: {}, argv: ["--set", `${path}=2147483647`] }), path);
    }
  });

  test("unknown setting is named in full", () => {
    const message = configError({ env: {}, argv: ["--set", "websocket.pingIntervalMz=5"] });
    assert.match(message, /websocket\.pingIntervalMz \(from --set websocket\.pingIntervalMz\): unknown setting/);
  });

  test("unknown env variable, flag and argument are rejected", () => {
    assert.match(configError({ env: { HERALD_PROT: "1" } }), /Unknown environment variable HERALD_PROT/);
    assert.match(configError({ env: {}, argv: ["--prot", "1"] }), /Unknown flag --prot/);
    assert.match(configError({ env: {}, argv: ["--verbose"] }), /Unknown flag --verbose/);
    assert.match(configError({ env: {}, argv: ["serve"] }), /Unexpected argument "serve"/);
    assert.match(configError({ env: {}, argv: ["--port"] }), /--port needs a value/);
    assert.match(configError({ env: {}, argv: ["--set", "port"] }), /--set takes path=value/);
  });

  test("unreadable or malformed file is rejected", () => {
    assert.match(configError({ env: {}, argv: ["--config", join(dir, "missing.yaml")] }), /Cannot read config file .*missing\.yaml/);
    const json = writeFile("broken.json", '{"port": 1');
    assert.match(configError({ env: {}, argv: ["--config", json] }), /broken\.json is not valid JSON/);
    const list = writeFile("list.yaml", "- 1\n- 2\n");
    assert.match(configError({ env: {}, argv: ["--config", list] }), /mapping of settings at the top level/);
    const proto = writeFile("proto.json", '{"__proto__": {"port": 1}}');
    assert.match(configError({ env: {}, argv: ["--config", proto] }), /"__proto__" is not allowed/);
  });

  test("empty file gives the defaults", () => {
    const empty = writeFile("empty.yaml", "");
    assert.equal(loadConfig({ env: {}, argv: ["--config", empty] }).port, 8080);
  });

  test("every setting is documented", () => {
    const doc = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const paths: string[] = [];
    const walk = (value: object, prefix: string) => {
      for (const [key, inner] of Object.entries(value)) {
        if (key === "namespaces") {
          continue;
        }
        if (typeof inner === "object" && inner !== null && !Array.isArray(inner)) {
          walk(inner, `${prefix}${key}.`);
        } else {
          paths.push(prefix + key);
        }
      }
    };
    walk(loadConfig({ env: {} }), "");
    assert.ok(paths.length > 30, `found ${paths.length} settings`);
    assert.match(doc, /^## namespaces$/m);
    for (const path of paths) {
      assert.ok(doc.includes(`| \`${path}\` |`), `${path} has a row in docs/configuration.md`);
    }
  });
});

/** Lists the paths of every setting whose name ends in Ms. */
function millisecondPaths(settings: Record<string, unknown>, prefix: string): string[] {
  return Object.entries(settings).flatMap(([key, value]) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return millisecondPaths(value as Record<string, unknown>, `${prefix}${key}.`);
    }
    return key.endsWith("Ms") ? [`${prefix}${key}`] : [];
  });
}
