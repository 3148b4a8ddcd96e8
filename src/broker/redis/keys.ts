/**
 * Key and pub/sub channel names. Every key of one channel carries the
 * channel name as a hash tag (`{news}`), so a Lua script that touches
 * several of them runs on one Redis Cluster slot, and the shard channel
 * that fans the channel out lives on that slot too. Channel names cannot
 * contain braces (see validateChannel), so the tag is always the whole name.
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  /** Hash with the channel's `epoch` and `top` offset; outlives the history. */
  meta(channel: string): string {
    return `${this.prefix}{${channel}}:meta`;
  }

  /** Stream of the channel's kept events; entry ids are `<offset>-0`. */
  history(channel: string): string {
    return `${this.prefix}{${channel}}:history`;
  }

  /** String holding the first result of a publish with this idempotency key. */
  idempotency(channel: string, key: string): string {
    return `${this.prefix}{${channel}}:idempotency:${key}`;
  }

  /** Sorted set of the channel's presence entries, scored by expiry time in ms. */
  presence(channel: string): string {
    return `${this.prefix}{${channel}}:presence`;
  }

  /** Hash from client id to the presence entry as JSON. */
  presenceEntries(channel: string): string {
    return `${this.prefix}{${channel}}:presence:entries`;
  }

  /** The (shard) pub/sub channel that carries the channel's events to nodes. */
  events(channel: string): string {
    return `${this.prefix}{${channel}}:events`;
  }

  /** Extracts the Herald channel from a pub/sub channel name, or undefined. */
  channelOf(eventsChannel: string): string | undefined {
    if (!eventsChannel.startsWith(`${this.prefix}{`) || !eventsChannel.endsWith("}:events")) {
      return undefined;
    }
    return eventsChannel.slice(this.prefix.length + 1, -"}:events".length);
  }

  session(id: string): string {
    return `${this.prefix}session:${id}`;
  }

  /** Sorted set of live node ids, scored by expiry time in ms. */
  nodes(): string {
    return `${this.prefix}{nodes}`;
  }

  /** Hash from node id to the node's info as JSON. */
  nodeInfo(): string {
    return `${this.prefix}{nodes}:info`;
  }
}
