/** A fixed-capacity queue that drops its oldest item when full. */
export class Ring<T> {
  private items: Array<T | undefined>;
  private head = 0;
  private count = 0;

  constructor(private capacity: number) {
    this.items = new Array<T | undefined>(Math.min(capacity, 16));
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.capacity === 0) {
      return;
    }
    if (this.count === this.capacity) {
      this.items[this.head] = item;
      this.head = (this.head + 1) % this.items.length;
      return;
    }
    if (this.count === this.items.length) {
      this.grow();
    }
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count++;
  }

  /** Item at index i, 0 being the oldest. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.count) {
      return undefined;
    }
    return this.items[(this.head + i) % this.items.length];
  }

  /** Changes the capacity, dropping the oldest items that no longer fit. */
  resize(capacity: number): void {
    const kept = this.toArray().slice(Math.max(0, this.count - capacity));
    this.capacity = capacity;
    this.items = new Array<T | undefined>(Math.max(Math.min(capacity, 16), kept.length));
    this.head = 0;
    this.count = 0;
    for (const item of kept) {
      this.push(item);
    }
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) {
      out.push(this.at(i)!);
    }
    return out;
  }

  private grow(): void {
    const next = new Array<T | undefined>(Math.min(this.capacity, this.items.length * 2));
    for (let i = 0; i < this.count; i++) {
      next[i] = this.at(i);
    }
    this.items = next;
    this.head = 0;
  }
}
