/** The soak's seeded choices (xorshift32): the same seed gives the same fault schedule and the same calls' sizes. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x / 2 ** 32;
  }

  /** An integer in lo..hi, both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** The items in a random order (a copy). */
  shuffled<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }

  /** A new generator whose sequence depends on this seed and `salt` only: one per call loop, so loops do not share a sequence. */
  fork(salt: number): SeededRandom {
    return new SeededRandom((this.state ^ Math.imul(salt + 1, 0x85ebca6b)) >>> 0);
  }
}
