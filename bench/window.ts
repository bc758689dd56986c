// The measured window of a worker that sends a ScenarioReport (scenarios/worker.ts, lanes-worker.ts): latency samples
// kept only inside it, the byte meters and memory at each of its two marks, its time and CPU, and the report.
import { performance } from 'node:perf_hooks';
import type { MarkSnapshot, MemorySample, ScenarioReport } from './protocol.js';
import { LatencyRecorder } from './stats.js';

const collectGarbage = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

/** process.memoryUsage(); started with --expose-gc, after a collection, so it shows what is retained. */
export function sampleMemory(): MemorySample {
  collectGarbage();
  const { rss, heapTotal, heapUsed, external } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external };
}

/** Payload byte totals of one side so far. */
export interface ByteTotals {
  sentBytes: number;
  receivedBytes: number;
}

export class MeasuredWindow {
  /** The snapshots taken at the marks so far. */
  readonly marks: MarkSnapshot[] = [];
  private readonly latencies = new LatencyRecorder();
  private inWindow = false;
  private cpu0: NodeJS.CpuUsage = process.cpuUsage();
  private t0 = 0;
  private window: { elapsedMs: number; cpu: NodeJS.CpuUsage } | undefined;

  constructor(private readonly totals: () => ByteTotals) {}

  /** One latency sample (ms); kept only inside the window. */
  record(ms: number): void {
    if (this.inWindow) this.latencies.record(ms);
  }

  /** The first mark: snapshot, then the window opens. */
  open(): void {
    this.snapshot();
    this.inWindow = true;
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
  }

  /** The second mark: time and CPU end here (before the side's clean end), then the snapshot. */
  close(): void {
    this.window = { elapsedMs: performance.now() - this.t0, cpu: process.cpuUsage(this.cpu0) };
    this.inWindow = false;
    this.snapshot();
  }

  /** The report, once the side's work has ended cleanly: `final` holds the byte totals the count check uses. */
  report(side: 'client' | 'server', memory: { ready: MemorySample; peakRss: number }, facts: Record<string, number>): ScenarioReport {
    const [m1, m2] = this.marks;
    if (m1 === undefined || m2 === undefined || this.window === undefined) throw new Error('report before the second mark');
    const [p50Us = NaN, p99Us = NaN] = this.latencies.percentilesUs([0.5, 0.99]);
    return {
      role: 'scenario',
      side,
      elapsedMs: this.window.elapsedMs,
      cpu: { userUs: this.window.cpu.user, systemUs: this.window.cpu.system },
      ready: memory.ready,
      peakRss: memory.peakRss,
      marks: [m1, m2],
      final: this.totals(),
      latency: { count: this.latencies.count, p50Us, p99Us },
      facts,
    };
  }

  private snapshot(): void {
    this.marks.push({ ...this.totals(), ...sampleMemory() });
  }
}
