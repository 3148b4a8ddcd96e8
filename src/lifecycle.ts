/**
 * A node's shutdown as explicit states. The node starts `running`. A
 * shutdown request first makes it unready, so /readyz turns 503 while the
 * node still serves everything. Then it moves to `draining` and finally to
 * `closed`, never back. Each step is published as a typed event, so metrics
 * and tests can follow it without parsing logs.
 */

export type NodeState = "running" | "draining" | "closed";

/**
 * Time `herald serve` allows after the drain delay and the drain timeout
 * for closing the broker, in ms; past it the process exits 1. A deployment's
 * grace period must cover delay + timeout + this margin.
 */
export const EXIT_MARGIN_MS = 5_000;

export type LifecycleEvent =
  /** Shutdown began: readiness is off from now on; draining starts after `delayMs`. */
  | { readonly type: "shutdown_requested"; readonly reason: string; readonly delayMs: number; readonly timeoutMs: number }
  /** The node entered `draining` with this many open connections. */
  | { readonly type: "draining"; readonly connections: number }
  /** Every connection finished before the drain timeout. */
  | { readonly type: "drained"; readonly elapsedMs: number }
  /** The drain timeout passed, or a transport's drain failed; `remaining` connections are destroyed. */
  | { readonly type: "drain_timed_out"; readonly remaining: number }
  /** The node entered `closed`: listener, connections and broker are closed. */
  | { readonly type: "closed"; readonly elapsedMs: number };

export type LifecycleListener = (event: LifecycleEvent) => void;

export class Lifecycle {
  private current: NodeState = "running";
  private requested = false;
  private readonly listeners = new Set<LifecycleListener>();

  get state(): NodeState {
    return this.current;
  }

  /** Whether shutdown was requested; true from the first moment, before `draining`. */
  get shuttingDown(): boolean {
    return this.requested;
  }

  /** Adds a listener; it must not throw. Returns a function that removes it. */
  on(listener: LifecycleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Marks the node as leaving. Returns false if shutdown was already requested. */
  requestShutdown(reason: string, delayMs: number, timeoutMs: number): boolean {
    if (this.requested) {
      return false;
    }
    this.requested = true;
    this.emit({ type: "shutdown_requested", reason, delayMs, timeoutMs });
    return true;
  }

  startDraining(connections: number): void {
    this.expect("running", "draining");
    this.current = "draining";
    this.emit({ type: "draining", connections });
  }

  drained(elapsedMs: number): void {
    this.expect("draining", "drained");
    this.emit({ type: "drained", elapsedMs });
  }

  drainTimedOut(remaining: number): void {
    this.expect("draining", "drain_timed_out");
    this.emit({ type: "drain_timed_out", remaining });
  }

  close(elapsedMs: number): void {
    this.expect("draining", "closed");
    this.current = "closed";
    this.emit({ type: "closed", elapsedMs });
  }

  /** Throws unless shutdown was requested and the node is in `state`, since steps must follow in order. */
  private expect(state: NodeState, step: LifecycleEvent["type"]): void {
    if (!this.requested || this.current !== state) {
      throw new Error(`Lifecycle step ${step} is invalid in state ${this.current}${this.requested ? "" : " before a shutdown request"}.`);
    }
  }

  private emit(event: LifecycleEvent): void {
    for (const listener of this.listeners) {
      listener(event);
    }
  }
}
