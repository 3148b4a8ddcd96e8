/** A small seeded PRNG (mulberry32), so a failing fuzz run can be replayed from its seed. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Returns a float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Returns an integer in [0, bound). */
  int(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  string(maxLength: number, alphabet = "abcXYZ019:_-./@=*% \"\\\u0000\u00e9\u{1f600}"): string {
    const chars = [...alphabet];
    let text = "";
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) {
      text += this.pick(chars);
    }
    return text;
  }

  /** Builds a JSON value of bounded size, with the awkward cases fuzzers find. */
  json(depth = 0): unknown {
    const kind = this.int(depth > 3 ? 7 : 9);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -0, 1, -1, 2 ** 53, 2 ** 64, 1e308, -1e308, 5e-324, 0.1, Number.MAX_SAFE_INTEGER + 2]);
      case 3:
        return this.string(40);
      case 4:
        return this.string(2_000, "x");
      case 5:
        return this.int(1_000_000);
      case 6:
        return this.pick(["", "connect", "subscribe", "__proto__", "constructor"]);
      case 7:
        return Array.from({ length: this.int(5) }, () => this.json(depth + 1));
      default: {
        const object: Record<string, unknown> = {};
        for (let i = this.int(5); i > 0; i--) {
          const key = this.pick(["id", "type", "channel", "data", "since", "token", "x", "__proto__", "constructor", "prototype"]);
          // defineProperty makes `__proto__` an own key, as JSON.parse does, instead of setting the prototype.
          Object.defineProperty(object, key, { value: this.json(depth + 1), enumerable: true, writable: true, configurable: true });
        }
        return object;
      }
    }
  }
}

/** Builds `[[[...]]]` or `{"a":{"a":...}}` nested `depth` levels, as raw JSON text. */
export function nestedJson(depth: number, object: boolean): string {
  return object ? `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}` : `${"[".repeat(depth)}1${"]".repeat(depth)}`;
}
