import type { Broker, BrokerListener, HistoryResult, PresenceEvent, Publication, StreamPosition } from "./broker/broker.js";
import type { Namespace, Namespaces } from "./channel.js";
import { validateChannel } from "./channel.js";
import { EncodedPublication } from "./encoded.js";
import { HeraldError, protocolError } from "./errors.js";
import { HeraldEvents, type BrokerOperation } from "./events.js";

/** A local connection that receives the events of its channels. */
export interface Subscriber {
  /** A live event, in offset order per channel. Must not throw. */
  deliver(event: EncodedPublication, subscription: Subscription): void;
  /**
   * Events were lost for this subscription (history no longer covers them,
   * or the channel's epoch changed). Delivery continues after `position`.
   */
  gap(subscription: Subscription, position: StreamPosition): void;
  /** More events arrived while recovering than the hub buffers; the subscriber should end and resume. */
  overflow(subscription: Subscription): void;
  /** A client joined or left the channel's presence. Must not throw. */
  presenceChanged?(subscription: Subscription, event: PresenceEvent): void;
}

/** Live events buffered per subscription while its history is read. */
const RECOVERY_BUFFER_LIMIT = 10_000;

/** One subscriber's membership in one channel. */
export class Subscription {
  /** Epoch and offset of the last event handed to the subscriber. */
  epoch = "";
  offset = 0;
  live = false;
  closed = false;
  private buffer: EncodedPublication[] | undefined = [];

  constructor(
    readonly subscriber: Subscriber,
    readonly channel: string,
  ) {}

  /** Hands over the events that arrived during recovery, then delivers live. */
  activate(): void {
    const buffered = this.buffer;
    this.buffer = undefined;
    this.live = true;
    if (this.closed || buffered === undefined) {
      return;
    }
    for (const event of buffered) {
      this.receive(event);
    }
  }

  /** Called by the hub for each live event of the channel. */
  receive(event: EncodedPublication): void {
    if (this.closed || event.offset <= this.offset) {
      return;
    }
    if (!this.live) {
      if (this.buffer && this.buffer.length >= RECOVERY_BUFFER_LIMIT) {
        this.buffer = undefined;
        this.closed = true;
        this.subscriber.overflow(this);
        return;
      }
      this.buffer?.push(event);
      return;
    }
    this.offset = event.offset;
    this.subscriber.deliver(event, this);
  }

  /** Moves the subscription to a new position after a gap and notifies the subscriber. */
  jump(position: StreamPosition): void {
    this.epoch = position.epoch;
    this.offset = position.offset;
    if (this.buffer) {
      this.buffer = this.buffer.filter((event) => event.publication.epoch === position.epoch);
    }
    if (!this.closed) {
      this.subscriber.gap(this, position);
    }
  }
}

export interface SubscribeResult {
  readonly subscription: Subscription;
  readonly epoch: string;
  /** Offset of the newest event of the channel when the subscription started. */
  readonly top: number;
  /** Whether every event after the requested position is in `publications`. */
  readonly recovered: boolean;
  /** Events after the requested position, oldest first; empty without a position. */
  readonly publications: EncodedPublication[];
}

class ChannelState {
  readonly subscriptions = new Set<Subscription>();
  epoch: string | undefined;
  /** Offset of the last event delivered on this node. */
  top = 0;
  /** Settles when the broker delivers this channel to the node. */
  ready: Promise<void> | undefined;
  catchingUp = false;
  /** A resync arrived during a catch-up, so another one follows it. */
  resyncAgain = false;
  pending: Publication[] = [];
  /** The history read that subscribes of this turn of the event loop share, until it is sent. */
  nextRead: SharedRead | undefined;

  constructor(readonly name: string) {}
}

/**
 * One history read for every subscribe to a channel in one turn of the
 * event loop. After a restart thousands of clients resume the same
 * channel at once, and each would read the same events from the broker
 * and encode them again. The read starts at the lowest position asked
 * for, and each subscribe takes the events after its own.
 */
interface SharedRead {
  since: number;
  limit: number;
  readonly result: Promise<{ history: HistoryResult; encoded: EncodedPublication[] }>;
}

export interface HubStats {
  publications: number;
  deliveries: number;
  gaps: number;
}

/**
 * The node's fan-out point. It keeps one broker subscription per channel
 * with local subscribers, encodes each event once per wire format, and
 * hands the shared bytes to every subscriber. It also restores order when
 * the broker skips offsets, by filling the hole from history.
 */
export class Hub implements BrokerListener {
  private readonly channels = new Map<string, ChannelState>();
  readonly stats: HubStats = { publications: 0, deliveries: 0, gaps: 0 };
  private availabilityListeners: Array<(available: boolean) => void> = [];

  constructor(
    readonly broker: Broker,
    readonly namespaces: Namespaces,
    private readonly idempotencyWindowMs: number,
    readonly events: HeraldEvents = new HeraldEvents(),
  ) {}

  start(): Promise<void> {
    return this.broker.start(this);
  }

  /** Number of channels with at least one local subscriber. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Number of local subscriptions across all channels. */
  get subscriptionCount(): number {
    let count = 0;
    for (const state of this.channels.values()) {
      count += state.subscriptions.size;
    }
    return count;
  }

  /** Local subscriber counts by channel. */
  channelSubscribers(): Array<{ channel: string; subscribers: number }> {
    return [...this.channels.values()].map((state) => ({ channel: state.name, subscribers: state.subscriptions.size }));
  }

  onAvailabilityChange(listener: (available: boolean) => void): void {
    this.availabilityListeners.push(listener);
  }

  namespaceOf(channel: string): Namespace {
    return this.namespaces.of(channel);
  }

  /** Publishes JSON text on a channel and returns the stored publication. */
  async publish(channel: string, data: string, idempotencyKey?: string): Promise<Publication> {
    validateChannel(channel);
    // Awaiting the store costs fewer microtask turns than returning its promise from an async function.
    return await this.store(channel, data, idempotencyKey);
  }

  /**
   * Publishes on an internal channel (`$admin:stats`), whose name clients
   * cannot use because it fails channel validation.
   */
  publishInternal(channel: string, data: string): Promise<Publication> {
    return this.store(channel, data, undefined);
  }

  private async store(channel: string, data: string, idempotencyKey: string | undefined): Promise<Publication> {
    const namespace = this.namespaces.of(channel);
    if (!this.broker.available()) {
      throw protocolError("broker_unavailable");
    }
    try {
      // One literal with every field, undefined key included, keeps a single object shape per publish.
      const options = {
        historySize: namespace.historySize,
        historyTtlMs: namespace.historyTtlMs,
        idempotencyWindowMs: this.idempotencyWindowMs,
        idempotencyKey,
      };
      const publication = await this.broker.publish(channel, data, options);
      this.stats.publications++;
      this.events.emit({ type: "publication", publication, bytes: Buffer.byteLength(data) });
      return publication;
    } catch (error) {
      this.brokerError("publish", error);
      throw protocolError("broker_unavailable", "The broker failed to store the publication; it was not published.", error);
    }
  }

  /** Reads a channel's kept history after `since`, oldest first. */
  async history(channel: string, since: number, limit: number) {
    validateChannel(channel);
    try {
      return await this.broker.history(channel, { since, limit });
    } catch (error) {
      this.brokerError("history", error);
      throw protocolError("broker_unavailable", "The broker failed to read history.", error);
    }
  }

  /**
   * Subscribes to a channel, recovering the events after `since` when given.
   * The caller sends the result's publications, then calls
   * `subscription.activate()` in the same tick to go live; events that
   * arrive meanwhile are buffered, so none is lost or repeated.
   */
  async subscribe(subscriber: Subscriber, channel: string, since?: StreamPosition): Promise<SubscribeResult> {
    let state = this.channels.get(channel);
    if (!state) {
      state = new ChannelState(channel);
      this.channels.set(channel, state);
    }
    const subscription = new Subscription(subscriber, channel);
    state.subscriptions.add(subscription);
    this.events.emit({ type: "subscription.added", channel });

    try {
      if (!state.ready) {
        state.ready = this.broker.subscribe(channel);
      }
      await state.ready;
      const namespace = this.namespaces.of(channel);
      const limit = since === undefined ? 0 : Math.max(namespace.historySize, 1);
      const { history, encoded } = await this.readShared(state, since?.offset ?? 0, limit);

      if (state.epoch === undefined) {
        state.epoch = history.epoch;
        state.top = Math.max(state.top, history.top);
      }

      if (since !== undefined && since.epoch === history.epoch && since.offset > history.top) {
        throw protocolError(
          "invalid_position",
          `Offset ${since.offset} is beyond the newest event (${history.top}) of channel ${channel}.`,
        );
      }

      const recovered =
        since !== undefined && since.epoch === history.epoch && since.offset + 1 >= history.earliest;
      let publications: EncodedPublication[] = [];
      subscription.epoch = history.epoch;
      if (recovered) {
        publications = encoded.filter((event) => event.offset > since.offset);
        subscription.offset = publications.length > 0 ? publications[publications.length - 1]!.offset : since.offset;
      } else {
        subscription.offset = history.top;
      }
      if (since !== undefined && !recovered) {
        this.stats.gaps++;
      }
      return { subscription, epoch: history.epoch, top: history.top, recovered: since === undefined || recovered, publications };
    } catch (error) {
      this.unsubscribe(subscription);
      if (error instanceof HeraldError) {
        throw error;
      }
      this.brokerError("subscribe", error);
      throw protocolError("broker_unavailable", "The broker failed to subscribe.", error);
    }
  }

  /**
   * Joins this turn's history read of the channel, or starts one. The read
   * goes to the broker once the turn's subscribes have joined it. Each of
   * them registered its subscription before joining, so every event
   * published after the read is buffered by each subscription.
   */
  private readShared(state: ChannelState, since: number, limit: number): SharedRead["result"] {
    const joined = state.nextRead;
    if (joined !== undefined) {
      joined.since = Math.min(joined.since, since);
      joined.limit = Math.max(joined.limit, limit);
      return joined.result;
    }
    const read: SharedRead = {
      since,
      limit,
      result: new Promise((resolve, reject) => {
        setImmediate(() => {
          state.nextRead = undefined;
          this.broker.history(state.name, { since: read.since, limit: read.limit }).then((history) => {
            resolve({ history, encoded: history.publications.map((publication) => new EncodedPublication(publication)) });
          }, reject);
        });
      }),
    };
    state.nextRead = read;
    return read.result;
  }

  /** Ends a subscription; the node's broker subscription goes with the last one. */
  unsubscribe(subscription: Subscription): void {
    subscription.closed = true;
    const state = this.channels.get(subscription.channel);
    if (!state || !state.subscriptions.delete(subscription)) {
      return;
    }
    this.events.emit({ type: "subscription.removed", channel: state.name });
    if (state.subscriptions.size === 0) {
      this.channels.delete(state.name);
      this.broker.unsubscribe(state.name).catch((error: unknown) => {
        // An unsubscribe that fails leaves at most an unused broker
        // subscription until the engine reconnects, so it is only reported.
        this.brokerError("unsubscribe", error);
      });
    }
  }

  onPublication(publication: Publication): void {
    const state = this.channels.get(publication.channel);
    if (!state) {
      return;
    }
    if (state.catchingUp) {
      state.pending.push(publication);
      return;
    }
    if (state.epoch !== undefined && publication.epoch !== state.epoch) {
      // A new history began (Redis restarted empty, or the channel expired).
      // Its earlier events may be in history, so catch up from its start.
      state.pending.push(publication);
      void this.catchUp(state);
      return;
    } else if (state.epoch !== undefined && publication.offset <= state.top) {
      return;
    } else if (state.epoch !== undefined && publication.offset > state.top + 1) {
      state.pending.push(publication);
      void this.catchUp(state);
      return;
    }
    this.deliver(state, publication);
  }

  onResync(): void {
    this.events.emit({ type: "broker.reconnect" });
    for (const state of this.channels.values()) {
      if (state.catchingUp) {
        // The running catch-up may have read history before the loss.
        state.resyncAgain = true;
      } else if (state.epoch !== undefined) {
        void this.catchUp(state);
      }
    }
  }

  onPresence(event: PresenceEvent): void {
    const state = this.channels.get(event.channel);
    if (!state) {
      return;
    }
    for (const subscription of state.subscriptions) {
      if (subscription.live && !subscription.closed) {
        subscription.subscriber.presenceChanged?.(subscription, event);
      }
    }
  }

  onAvailability(available: boolean): void {
    this.events.emit({ type: "broker.availability", available });
    for (const listener of this.availabilityListeners) {
      listener(available);
    }
  }

  private deliver(state: ChannelState, publication: Publication): void {
    state.epoch = publication.epoch;
    state.top = publication.offset;
    const event = new EncodedPublication(publication);
    for (const subscription of state.subscriptions) {
      subscription.receive(event);
    }
    // One event per publication, not per subscriber, keeps the fan-out loop free of allocations.
    const subscribers = state.subscriptions.size;
    this.stats.deliveries += subscribers;
    this.events.emit({ type: "delivery", publication, subscribers, latencyMs: Date.now() - publication.time });
  }

  /** Called by an engine for failures it handles itself, such as a dropped connection. */
  onError(error: unknown): void {
    this.brokerError("engine", error);
  }

  private brokerError(operation: BrokerOperation, error: unknown): void {
    this.events.emit({ type: "broker.error", operation, error });
  }

  private changeEpoch(state: ChannelState, epoch: string, offset: number): void {
    state.epoch = epoch;
    state.top = offset;
    this.stats.gaps++;
    for (const subscription of state.subscriptions) {
      subscription.jump({ epoch, offset });
    }
  }

  /**
   * Fills a hole in a channel's offsets from history, then delivers what
   * was held back. If history no longer covers the hole, subscribers get
   * a gap notice instead of a silent loss.
   */
  private async catchUp(state: ChannelState): Promise<void> {
    state.catchingUp = true;
    let filled = false;
    try {
      for (let attempt = 0; !filled; attempt++) {
        try {
          let history = await this.broker.history(state.name, { since: state.top, limit: 10_000 });
          if (history.epoch !== state.epoch) {
            // A new history (Redis restarted empty, or the channel expired):
            // its offsets start over, so read it again from its oldest event.
            this.changeEpoch(state, history.epoch, history.earliest - 1);
            history = await this.broker.history(state.name, { since: state.top, limit: 10_000 });
          }
          if (history.epoch === state.epoch && history.earliest > state.top + 1) {
            this.changeEpoch(state, history.epoch, history.earliest - 1);
          }
          for (const publication of history.publications) {
            if (publication.epoch === state.epoch && publication.offset > state.top) {
              this.deliver(state, publication);
            }
          }
          filled = true;
        } catch (error) {
          this.brokerError("catch_up", error);
          if (attempt >= 5 || this.channels.get(state.name) !== state) {
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
        }
      }
    } finally {
      state.catchingUp = false;
      let pending = state.pending.sort((a, b) => a.offset - b.offset);
      state.pending = [];
      if (filled && pending.some((publication) => publication.epoch !== state.epoch)) {
        // History named the current epoch, so events of another one are
        // either older or newer than the history read. Another catch-up
        // finds out which, without flipping the epoch on a stale event.
        pending = pending.filter((publication) => publication.epoch === state.epoch);
        state.resyncAgain = true;
      }
      const first = pending[0];
      if (!filled && first !== undefined && first.offset > state.top + 1) {
        // History stayed unreachable: report the hole instead of waiting forever.
        this.changeEpoch(state, first.epoch, first.offset - 1);
      } else if (!filled) {
        // Nothing shows whether events were missed, so keep trying until
        // a history read succeeds or the channel loses its last subscriber.
        state.resyncAgain = true;
      }
      for (const publication of pending) {
        this.onPublication(publication);
      }
      if (state.resyncAgain && !state.catchingUp && this.channels.get(state.name) === state) {
        state.resyncAgain = false;
        void this.catchUp(state);
      }
    }
  }
}
