import type {
  Broker,
  BrokerListener,
  HistoryQuery,
  HistoryResult,
  NodeInfo,
  PresenceEntry,
  PresenceEvent,
  Publication,
  PublishOptions,
} from "./broker.js";
import { newEpoch } from "./epoch.js";
import { Ring } from "./ring.js";

interface ChannelHistory {
  epoch: string;
  top: number;
  events: Ring<Publication>;
  /** When the history expires, in ms since the Unix epoch. */
  expiresAt: number;
  /** How long the history lives after its last publication or last subscriber, in ms. */
  ttlMs: number;
}

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** How often expired channels, sessions and presence entries are swept, in ms. */
const SWEEP_INTERVAL_MS = 5_000;

/**
 * Lifetime of a channel record created by a read (a subscribe or a history
 * request) before any publish set the namespace's TTL, in ms. Without it a
 * quiet channel would get a new epoch as soon as its last subscriber left,
 * and that subscriber's resume would report a gap although nothing was lost.
 */
const DEFAULT_TTL_MS = 300_000;

/**
 * Most channel records kept that only reads created: never published to
 * and not subscribed by this node. Any client may read any channel name,
 * so without a cap a stream of reads of fresh names would grow memory for
 * a whole TTL. A record costs about 500 bytes of RSS (an estimate from
 * polling 192,000 fresh names), so the cap keeps them to about 25 MB,
 * while it is still far above the channels that clients read and then
 * wait on in practice. The least recently read record goes first. A later
 * read of its channel starts a new epoch, so a client that resumes on the
 * old epoch gets a gap notice, never a silent loss.
 */
export const READ_ONLY_RECORD_CAP = 50_000;

/**
 * The single-node engine. Everything lives in this process, so publish
 * delivers to the hub synchronously and offsets are plain counters.
 * Memory is bounded by history sizes and TTLs: a channel's record is
 * dropped once its history expired and it has no local subscriber.
 */
export class MemoryBroker implements Broker {
  readonly kind = "memory";
  private listener: BrokerListener | undefined;
  private readonly channels = new Map<string, ChannelHistory>();
  private readonly subscribed = new Set<string>();
  /** Channels whose record only reads created, least recently read first; bounded by the cap. */
  private readonly readOnly = new Set<string>();
  private readonly readOnlyCap: number;
  private readonly idempotency = new Map<string, Expiring<Publication>>();
  private readonly sessions = new Map<string, Expiring<string>>();
  private readonly presence = new Map<string, Map<string, Expiring<PresenceEntry>>>();
  private readonly nodes = new Map<string, Expiring<NodeInfo>>();
  private sweeper: NodeJS.Timeout | undefined;

  /** `readOnlyCap` overrides READ_ONLY_RECORD_CAP, for tests. */
  constructor(options: { readOnlyCap?: number } = {}) {
    this.readOnlyCap = options.readOnlyCap ?? READ_ONLY_RECORD_CAP;
  }

  /** Number of channel records in memory, whatever created them. */
  get channelRecords(): number {
    return this.channels.size;
  }

  async start(listener: BrokerListener): Promise<void> {
    this.listener = listener;
    this.sweeper = setInterval(() => this.sweep(Date.now()), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
    listener.onAvailability(true);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  available(): boolean {
    return true;
  }

  async publish(channel: string, data: string, options: PublishOptions): Promise<Publication> {
    const now = Date.now();
    const idempotencyKey = options.idempotencyKey === undefined ? undefined : `${channel}\n${options.idempotencyKey}`;
    if (idempotencyKey !== undefined) {
      const earlier = this.idempotency.get(idempotencyKey);
      if (earlier && earlier.expiresAt > now) {
        return earlier.value;
      }
    }

    const history = this.channel(channel, now, options);
    this.readOnly.delete(channel);
    history.top++;
    history.ttlMs = options.historyTtlMs;
    history.expiresAt = now + options.historyTtlMs;
    const publication: Publication = { channel, epoch: history.epoch, offset: history.top, data, time: now };
    history.events.push(publication);

    if (idempotencyKey !== undefined) {
      this.idempotency.set(idempotencyKey, {
        value: publication,
        expiresAt: now + (options.idempotencyWindowMs ?? 300_000),
      });
    }
    if (this.subscribed.has(channel)) {
      this.listener?.onPublication(publication);
    }
    return publication;
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const history = this.channel(channel, Date.now());
    if (history.top === 0 && !this.subscribed.has(channel)) {
      this.readOnly.delete(channel);
      this.readOnly.add(channel);
      this.evictReadOnly();
    }
    const events = history.events;
    const earliest = events.size === 0 ? history.top + 1 : events.at(0)!.offset;
    const publications: Publication[] = [];

    const first = Math.max(query.since + 1, earliest);
    for (let offset = first; offset <= history.top && publications.length < query.limit; offset++) {
      publications.push(events.at(offset - earliest)!);
    }
    return { epoch: history.epoch, top: history.top, earliest, publications };
  }

  async subscribe(channel: string): Promise<void> {
    this.subscribed.add(channel);
    this.readOnly.delete(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.subscribed.delete(channel);
    // The history outlives its last subscriber by its TTL, so that a client
    // that comes back within it resumes on the same epoch.
    const history = this.channels.get(channel);
    if (history) {
      history.expiresAt = Math.max(history.expiresAt, Date.now() + history.ttlMs);
      if (history.top === 0) {
        this.readOnly.add(channel);
        this.evictReadOnly();
      }
    }
  }

  async saveSession(id: string, state: string, ttlMs: number): Promise<void> {
    this.sessions.set(id, { value: state, expiresAt: Date.now() + ttlMs });
  }

  async loadSession(id: string): Promise<string | undefined> {
    const session = this.sessions.get(id);
    return session && session.expiresAt > Date.now() ? session.value : undefined;
  }

  async deleteSession(id: string): Promise<void> {
    this.sessions.delete(id);
  }

  async presenceAdd(channel: string, entry: PresenceEntry, ttlMs: number): Promise<void> {
    let entries = this.presence.get(channel);
    if (!entries) {
      entries = new Map();
      this.presence.set(channel, entries);
    }
    const now = Date.now();
    const previous = entries.get(entry.clientId);
    entries.set(entry.clientId, { value: entry, expiresAt: now + ttlMs });
    if (previous === undefined || previous.expiresAt <= now) {
      this.announce({ type: "join", channel, entry });
    }
  }

  async presenceRemove(channel: string, clientId: string): Promise<void> {
    const entries = this.presence.get(channel);
    const removed = entries?.get(clientId);
    entries?.delete(clientId);
    if (entries?.size === 0) {
      this.presence.delete(channel);
    }
    if (removed !== undefined) {
      this.announce({ type: "leave", channel, entry: removed.value });
    }
  }

  async presenceList(channel: string): Promise<PresenceEntry[]> {
    const now = Date.now();
    const entries = this.presence.get(channel);
    if (!entries) {
      return [];
    }
    return [...entries.values()].filter((entry) => entry.expiresAt > now).map((entry) => entry.value);
  }

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    this.nodes.set(info.id, { value: info, expiresAt: Date.now() + ttlMs });
  }

  async removeNode(id: string): Promise<void> {
    this.nodes.delete(id);
  }

  async listNodes(): Promise<NodeInfo[]> {
    const now = Date.now();
    return [...this.nodes.values()].filter((node) => node.expiresAt > now).map((node) => node.value);
  }

  private announce(event: PresenceEvent): void {
    if (this.subscribed.has(event.channel)) {
      this.listener?.onPresence(event);
    }
  }

  /** Returns the channel's live history record, starting a new epoch if it had expired. */
  private channel(channel: string, now: number, options?: PublishOptions): ChannelHistory {
    let history = this.channels.get(channel);
    // A record that a read created (top 0) keeps its epoch until the sweep,
    // so a read followed by the first publish agree on the epoch.
    if (history && history.expiresAt <= now && !this.subscribed.has(channel) && history.top > 0) {
      this.channels.delete(channel);
      history = undefined;
    }
    if (history && history.expiresAt <= now) {
      // A subscribed channel keeps its epoch and offsets, so its subscribers
      // see no gap, but the expired events are dropped.
      history.events = new Ring(options?.historySize ?? 0);
    }
    if (!history) {
      const ttlMs = options?.historyTtlMs ?? DEFAULT_TTL_MS;
      history = {
        epoch: newEpoch(),
        top: 0,
        events: new Ring<Publication>(options?.historySize ?? 0),
        expiresAt: now + ttlMs,
        ttlMs,
      };
      this.channels.set(channel, history);
    } else if (options && history.events.size === 0 && options.historySize > 0) {
      history.events.resize(options.historySize);
    }
    return history;
  }

  /** Drops the least recently read records that only reads created, down to the cap. */
  private evictReadOnly(): void {
    for (const name of this.readOnly) {
      if (this.readOnly.size <= this.readOnlyCap) {
        return;
      }
      this.readOnly.delete(name);
      this.channels.delete(name);
    }
  }

  private sweep(now: number): void {
    for (const [name, history] of this.channels) {
      if (history.expiresAt <= now && !this.subscribed.has(name)) {
        this.channels.delete(name);
        this.readOnly.delete(name);
      }
    }
    for (const [key, entry] of this.idempotency) {
      if (entry.expiresAt <= now) this.idempotency.delete(key);
    }
    for (const [id, node] of this.nodes) {
      if (node.expiresAt <= now) this.nodes.delete(id);
    }
    for (const [id, session] of this.sessions) {
      if (session.expiresAt <= now) this.sessions.delete(id);
    }
    for (const [channel, entries] of this.presence) {
      for (const [clientId, entry] of entries) {
        if (entry.expiresAt <= now) {
          entries.delete(clientId);
          this.announce({ type: "leave", channel, entry: entry.value });
        }
      }
      if (entries.size === 0) this.presence.delete(channel);
    }
  }
}
