import type { Config } from "./config.js";
import { protocolError } from "./errors.js";

/** Longest accepted channel name, in characters (all ASCII). */
export const MAX_CHANNEL_LENGTH = 200;

const CHANNEL_PATTERN = /^[A-Za-z0-9_\-.:@/=]+$/;

/** Effective settings of one namespace, with every default filled in. */
export interface Namespace {
  readonly name: string;
  readonly historySize: number;
  readonly historyTtlMs: number;
  readonly anonymousSubscribe: boolean;
  readonly clientPublish: boolean;
  readonly presence: boolean;
}

/**
 * Throws `invalid_channel` unless the name is 1 to 200 characters of
 * letters, digits and `_ - . : @ / =`. The set keeps names safe in URLs,
 * Redis keys and log lines without escaping.
 */
export function validateChannel(channel: unknown): string {
  if (typeof channel !== "string" || channel.length === 0) {
    throw protocolError("invalid_channel", "The channel name must be a non-empty string.");
  }
  if (channel.length > MAX_CHANNEL_LENGTH) {
    throw protocolError("invalid_channel", `The channel name is longer than ${MAX_CHANNEL_LENGTH} characters.`);
  }
  if (!CHANNEL_PATTERN.test(channel)) {
    throw protocolError(
      "invalid_channel",
      `Invalid channel name ${JSON.stringify(channel.slice(0, 64))}: use letters, digits and _ - . : @ / = only.`,
    );
  }
  return channel;
}

/** Resolves channels to their namespace settings, computed once per namespace. */
export class Namespaces {
  private readonly resolved = new Map<string, Namespace>();
  private readonly fallback: Namespace;

  constructor(config: Config, tokensConfigured: boolean) {
    const defaults = config.defaults;
    this.fallback = Object.freeze({
      name: "",
      historySize: defaults.historySize,
      historyTtlMs: defaults.historyTtlMs,
      anonymousSubscribe: defaults.anonymousSubscribe ?? !tokensConfigured,
      clientPublish: defaults.clientPublish,
      presence: defaults.presence,
    });
    for (const [name, settings] of Object.entries(config.namespaces)) {
      this.resolved.set(
        name,
        Object.freeze({
          name,
          historySize: settings.historySize ?? this.fallback.historySize,
          historyTtlMs: settings.historyTtlMs ?? this.fallback.historyTtlMs,
          anonymousSubscribe: settings.anonymousSubscribe ?? this.fallback.anonymousSubscribe,
          clientPublish: settings.clientPublish ?? this.fallback.clientPublish,
          presence: settings.presence ?? this.fallback.presence,
        }),
      );
    }
  }

  /** Returns the namespace of `chat:room1` (`chat` if configured), else the defaults. */
  of(channel: string): Namespace {
    const colon = channel.indexOf(":");
    if (colon <= 0) {
      return this.fallback;
    }
    return this.resolved.get(channel.slice(0, colon)) ?? this.fallback;
  }
}
