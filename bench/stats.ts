// Latency samples and order statistics: a growable Float64Array recorder, nearest-rank percentiles, medians.

/** Collects per-call latencies (ms, as performance.now() differences) without per-sample allocation. */
export class LatencyRecorder {
  private buf = new Float64Array(1 << 16);
  private n = 0;

  record(ms: number): void {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = ms;
  }

  reset(): void {
    this.n = 0;
  }

  /** Samples recorded since the last reset. */
  get count(): number {
    return this.n;
  }

  /** Percentiles in µs (nearest rank), e.g. percentilesUs([0.5, 0.99]). NaN when there are no samples. */
  percentilesUs(ps: readonly number[]): number[] {
    const sorted = this.buf.subarray(0, this.n).sort();
    return ps.map((p) => nearestRank(sorted, p) * 1000);
  }
}

function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** Median of finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] ?? NaN) : ((v[mid - 1] ?? NaN) + (v[mid] ?? NaN)) / 2;
}
