/**
 * Counts open connections per remote address across every transport, so
 * that one address cannot hold more than its share of sockets.
 */
export class ConnectionLimiter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly maxPerAddress: number) {}

  /**
   * Counts one more connection from `address`. Returns the function that
   * releases it (safe to call more than once), or undefined when the
   * address is already at its maximum.
   */
  acquire(address: string): (() => void) | undefined {
    const count = this.counts.get(address) ?? 0;
    if (count >= this.maxPerAddress) {
      return undefined;
    }
    this.counts.set(address, count + 1);
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      const current = this.counts.get(address) ?? 1;
      if (current <= 1) {
        this.counts.delete(address);
      } else {
        this.counts.set(address, current - 1);
      }
    };
  }

  /** Open connections counted for an address. */
  count(address: string): number {
    return this.counts.get(address) ?? 0;
  }
}
