/**
 * The contract between the hub and a broker engine. An engine assigns
 * offsets, keeps history, fans publications out to every node subscribed
 * to a channel, and stores sessions and presence. Engines: memory (one
 * node, no other process) and redis (standalone or cluster).
 */

/** One event on a channel, as stored in history and delivered to nodes. */
export interface Publication {
  readonly channel: string;
  readonly epoch: string;
  /** Position in the channel, starting at 1 and assigned once by the broker. */
  readonly offset: number;
  /** The event's data as compact JSON text, exactly as it goes on the wire. */
  readonly data: string;
  /** Publish time in ms since the Unix epoch, for latency metrics. */
  readonly time: number;
}

/** A position in one channel's history: the last offset seen in an epoch. */
export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}

export interface HistoryQuery {
  /** Return events with an offset greater than this one; 0 returns from the oldest kept. */
  readonly since: number;
  /** Most events returned, oldest first. 0 returns only the channel's position. */
  readonly limit: number;
}

export interface HistoryResult {
  readonly epoch: string;
  /** Offset of the newest event of the channel, 0 while it has none. */
  readonly top: number;
  /** Offset of the oldest event still kept, top + 1 when none is kept. */
  readonly earliest: number;
  readonly publications: Publication[];
}

export interface PublishOptions {
  /** Events kept in the channel's history. */
  readonly historySize: number;
  /** How long history lives after the last publication, in ms. */
  readonly historyTtlMs: number;
  /** A retry with the same key on the same channel within the window returns the first result. */
  readonly idempotencyKey?: string;
  readonly idempotencyWindowMs?: number;
}

export interface PresenceEntry {
  readonly clientId: string;
  readonly user: string;
  /** Id of the node that holds the connection. */
  readonly node: string;
}

/** A client joined or left a channel's presence (or its entry expired). */
export interface PresenceEvent {
  readonly type: "join" | "leave";
  readonly channel: string;
  readonly entry: PresenceEntry;
}

/** A node as the node registry lists it. */
export interface NodeInfo {
  readonly id: string;
  /** host:port where the node listens. */
  readonly address: string;
  /** Open client connections, as of the node's last heartbeat. */
  readonly connections: number;
  /** Start time in ms since the Unix epoch. */
  readonly started: number;
}

/** Callbacks from an engine to the hub of its node. */
export interface BrokerListener {
  /** A publication on a channel this node subscribes to, in offset order per channel. */
  onPublication(publication: Publication): void;
  /**
   * The engine may have missed publications (its subscriber connection
   * dropped and came back). The hub catches every channel up from history.
   */
  onResync(): void;
  /** Reachability changed; drives /readyz. */
  onAvailability(available: boolean): void;
  /** An error the engine handled itself (and retries); reported in logs and metrics. */
  onError?(error: unknown): void;
  /** A presence change on a channel this node subscribes to. */
  onPresence(event: PresenceEvent): void;
}

export interface Broker {
  readonly kind: string;
  start(listener: BrokerListener): Promise<void>;
  close(): Promise<void>;
  /** Whether the engine can serve requests now. */
  available(): boolean;

  publish(channel: string, data: string, options: PublishOptions): Promise<Publication>;
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;

  /** Starts node-level delivery of a channel; the hub calls it once per channel. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;

  /** Stores a session's JSON state for ttlMs. */
  saveSession(id: string, state: string, ttlMs: number): Promise<void>;
  loadSession(id: string): Promise<string | undefined>;
  deleteSession(id: string): Promise<void>;

  /** Adds or refreshes a presence entry that expires after ttlMs unless refreshed. */
  presenceAdd(channel: string, entry: PresenceEntry, ttlMs: number): Promise<void>;
  presenceRemove(channel: string, clientId: string): Promise<void>;
  presenceList(channel: string): Promise<PresenceEntry[]>;

  /** Adds or refreshes this node in the registry; it drops out after ttlMs without a refresh. */
  registerNode(info: NodeInfo, ttlMs: number): Promise<void>;
  removeNode(id: string): Promise<void>;
  /** The nodes whose registration has not expired. */
  listNodes(): Promise<NodeInfo[]>;
}
