/**
 * What the demo shows while it runs, on stdout: event lines stamped with the time since the start ("B restarted
 * ...") and a progress bar per transfer (src/cli/progress.ts: redrawn in place on a TTY, a plain line every 2 s
 * elsewhere). Silent under --json, whose stdout carries only the summary object.
 */
import type { CliIo } from '../command.js';
import { ProgressBoard, type ProgressBar } from '../progress.js';
import { formatBytes } from '../format.js';
import { quantile } from './summary.js';
import type { CallDelta, TransferProgress } from './messages.js';

/** The live latencies under the bars are those of the calls of the last few seconds. */
const RECENT_MS = 3_000;

export class DemoView {
  private readonly startedAt = performance.now();
  private board: ProgressBoard | undefined;
  private readonly bars = new Map<string, ProgressBar>();
  private recent: Array<{ at: number; ms: number }> = [];
  private readonly counts = { calls: 0, errors: 0, expected: 0 };

  constructor(private readonly io: CliIo, private readonly quiet: boolean) {}

  event(text: string): void {
    if (this.quiet) return;
    const line = `[${((performance.now() - this.startedAt) / 1000).toFixed(1).padStart(5)} s] ${text}`;
    if (this.board === undefined) this.io.stdout.write(`${line}\n`);
    else this.board.log(line);
  }

  /** A bar per receiver, labelled `A -> B`. */
  startProgress(receivers: readonly string[], totalBytes: number): void {
    if (this.quiet) return;
    this.board = new ProgressBoard(this.io.stdout);
    for (const to of receivers) this.bars.set(to, this.board.bar(`A -> ${to}`, totalBytes));
  }

  progress(transfers: readonly TransferProgress[]): void {
    for (const transfer of transfers) {
      const bar = this.bars.get(transfer.to);
      if (bar === undefined) continue;
      bar.update(transfer.doneBytes);
      if (transfer.attempts > 1 && transfer.finishedAt === undefined) bar.say(`resumed from ${formatBytes(transfer.resumedFrom)}`);
    }
  }

  /** A node's calls since its last report: the line under the bars shows the recent latencies and the counts. */
  calls(deltas: Record<string, CallDelta>): void {
    const now = performance.now();
    for (const delta of Object.values(deltas)) {
      for (const ms of delta.latenciesMs) this.recent.push({ at: now, ms });
      for (const [status, n] of Object.entries(delta.byStatus)) {
        this.counts.calls += n;
        if (status !== 'OK') this.counts.errors += n;
      }
      for (const n of Object.values(delta.expected)) {
        this.counts.calls += n;
        this.counts.expected += n;
      }
    }
    if (this.recent.length > 0 && now - this.recent[0]!.at > RECENT_MS) this.recent = this.recent.filter((s) => now - s.at <= RECENT_MS);
    const latencies = this.recent.map((s) => s.ms);
    const expected = this.counts.expected > 0 ? `, ${this.counts.expected} expected (the kill)` : '';
    this.board?.footer(`unary calls every way: p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms over the last ${RECENT_MS / 1000} s; ${this.counts.calls} calls, ${this.counts.errors} errors${expected}`);
  }

  /** The transfer to `to` ended: its bar says how. */
  ended(to: string, note: string, ok: boolean): void {
    const bar = this.bars.get(to);
    if (ok) bar?.finish(note);
    else bar?.fail(note);
  }

  /** The bars drawn a last time; later output goes below them. */
  close(): void {
    this.board?.stop();
    this.board = undefined;
  }
}
