/**
 * What the demo shows while it runs, on stdout: event lines stamped with the time since the start ("B restarted
 * ...") and a progress bar per transfer (src/cli/progress.ts: redrawn in place on a TTY, a plain line every 2 s
 * elsewhere). Silent under --json, whose stdout carries only the summary object.
 */
import type { CliIo } from '../command.js';
import { ProgressBoard, type ProgressBar } from '../progress.js';
import { formatBytes } from './summary.js';
import type { TransferProgress } from './messages.js';

export class DemoView {
  private readonly startedAt = performance.now();
  private board: ProgressBoard | undefined;
  private readonly bars = new Map<string, ProgressBar>();

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
