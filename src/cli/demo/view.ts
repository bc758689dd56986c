/**
 * What the demo shows while it runs: event lines ("B restarted ...") and one progress bar per transfer. Silent under
 * --json (stdout carries only the summary object).
 */
import type { CliIo } from '../command.js';
import type { TransferProgress } from './messages.js';

export class DemoView {
  private readonly startedAt = performance.now();

  constructor(private readonly io: CliIo, private readonly quiet: boolean) {}

  event(text: string): void {
    if (this.quiet) return;
    this.io.stdout.write(`[${((performance.now() - this.startedAt) / 1000).toFixed(1).padStart(5)} s] ${text}\n`);
  }

  startProgress(_labels: string[], _totalBytes: number): void {}

  progress(_transfers: readonly TransferProgress[]): void {}

  close(): void {}
}
