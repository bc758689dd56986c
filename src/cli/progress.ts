/**
 * Progress bars for the commands that move bytes (send, recv, demo): a board of one or more bars, each a label,
 * bytes done of a total (when known), MiB/s over the last few seconds and an ETA. On a TTY the board is redrawn in
 * place at most every `ttyIntervalMs` (100 ms); elsewhere (a pipe, a log file, CI) it prints one plain line per bar
 * every `plainIntervalMs` (2 s) and once when the bar ends. It writes only to the stream it is given (stderr for
 * send and recv, whose stdout may carry data), and its timer never keeps the process alive (unref'd, cleared by stop()).
 *
 *   const board = new ProgressBoard(io.stderr);
 *   const bar = board.bar('to B', 1 << 30);
 *   bar.update(bytesDone);            // as often as you like: drawing is throttled
 *   bar.finish('sha256 ok');          // or bar.fail('cut, retrying')
 *   board.stop();                     // final draw, timer cleared
 */
import type { Writable } from 'node:stream';

export interface ProgressBoardOptions {
  /** Redraw in place (default: the stream's isTTY). */
  tty?: boolean;
  /** Shortest time between two redraws on a TTY (default 100 ms). */
  ttyIntervalMs?: number;
  /** Time between two plain lines per bar elsewhere (default 2000 ms). */
  plainIntervalMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

type BarState = 'running' | 'done' | 'failed';

/** One bar: call update() with the bytes done; finish() or fail() once. */
export class ProgressBar {
  done = 0;
  private samples: { at: number; done: number }[] = [];
  state: BarState = 'running';
  note = '';
  private readonly started: number;
  private ended: number | undefined;
  /** The last plain line printed for this bar (non-TTY), to print a final one once. */
  lastPlainAt = -Infinity;

  constructor(
    private readonly board: ProgressBoard,
    public label: string,
    public total: number | undefined,
  ) {
    this.started = board.now();
  }

  update(done: number, total?: number): void {
    this.done = done;
    if (total !== undefined) this.total = total;
    const now = this.board.now();
    const last = this.samples[this.samples.length - 1];
    if (last === undefined || now - last.at >= 100) {
      this.samples.push({ at: now, done });
      while (this.samples.length > 2 && now - this.samples[0]!.at > 3000) this.samples.shift();
    }
  }

  /** A note shown after the numbers (e.g. "cut, retrying in 0.4 s"); empty clears it. */
  say(note: string): void {
    this.note = note;
    this.board.changed(this);
  }

  finish(note = ''): void {
    this.end('done', note);
  }

  fail(note: string): void {
    this.end('failed', note);
  }

  private end(state: BarState, note: string): void {
    if (this.state !== 'running') return;
    this.state = state;
    this.note = note;
    this.ended = this.board.now();
    this.board.changed(this, true);
  }

  /** Bytes per second over the last few seconds (the whole run once ended). */
  rate(): number {
    if (this.ended !== undefined) return this.done / Math.max((this.ended - this.started) / 1000, 1e-3);
    const first = this.samples[0];
    const now = this.board.now();
    if (first === undefined || now - first.at < 200) return 0;
    return (this.done - first.done) / ((now - first.at) / 1000);
  }

  /** One line: label, bar, bytes, MiB/s, ETA, note; `width` columns at most. */
  line(width: number, withBar: boolean): string {
    const rate = this.rate();
    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);
    const amount = this.total === undefined ? `${mib(this.done)} MiB` : `${mib(this.done)}/${mib(this.total)} MiB`;
    const percent = this.total === undefined || this.total === 0 ? '' : `${Math.floor((this.done / this.total) * 100).toString().padStart(3)}%`;
    const speed = `${(rate / 2 ** 20).toFixed(1)} MiB/s`;
    let eta = '';
    if (this.state === 'running' && this.total !== undefined && rate > 0) eta = `ETA ${formatSeconds((this.total - this.done) / rate)}`;
    if (this.state === 'done') eta = 'done';
    if (this.state === 'failed') eta = 'FAILED';
    const tail = [percent, amount, speed, eta, this.note].filter((part) => part !== '').join('  ');
    let bar = '';
    if (withBar && this.total !== undefined && this.total > 0) {
      const cells = Math.max(10, Math.min(40, width - this.label.length - tail.length - 6));
      const full = Math.min(cells, Math.round((this.done / this.total) * cells));
      bar = ` [${'#'.repeat(full)}${'.'.repeat(cells - full)}]`;
    }
    const text = `${this.label}${bar}  ${tail}`;
    return text.length > width ? text.slice(0, Math.max(0, width - 1)) : text;
  }
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class ProgressBoard {
  readonly bars: ProgressBar[] = [];
  readonly now: () => number;
  private readonly tty: boolean;
  private readonly ttyIntervalMs: number;
  private readonly plainIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** Lines the last TTY draw left on screen (moved up over on the next). */
  private drawn = 0;
  private footerText: string | undefined;
  private stopped = false;

  constructor(
    private readonly out: Writable & { isTTY?: boolean; columns?: number },
    options: ProgressBoardOptions = {},
  ) {
    this.tty = options.tty ?? out.isTTY === true;
    this.ttyIntervalMs = options.ttyIntervalMs ?? 100;
    this.plainIntervalMs = options.plainIntervalMs ?? 2000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Adds a bar (shown below the earlier ones). */
  bar(label: string, total?: number): ProgressBar {
    const bar = new ProgressBar(this, label, total);
    this.bars.push(bar);
    this.start();
    return bar;
  }

  private start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setInterval(() => this.draw(), this.tty ? this.ttyIntervalMs : Math.min(this.plainIntervalMs, 500));
    this.timer.unref();
  }

  /** A bar's note or state changed: a plain board prints an ended bar's last line now. */
  changed(bar: ProgressBar, ended = false): void {
    if (!this.tty && ended) this.printPlain(bar);
  }

  /** Draws once more and clears the timer; nothing is written after. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.draw();
    else for (const bar of this.bars) if (bar.state === 'running') this.printPlain(bar);
    if (!this.tty && this.footerText) this.out.write(`${this.footerText}\n`);
    this.stopped = true;
  }

  /** Prints `line` above the bars (an event while they run): on a TTY the bars are moved down under it and redrawn. */
  log(line: string): void {
    if (!this.tty || this.stopped || this.drawn === 0) {
      this.out.write(`${line}\n`);
      return;
    }
    this.out.write(`\x1b[${this.drawn}A\r\x1b[2K${line}\n${this.rows()}`);
  }

  /**
   * A line under the bars (the demo's live call latencies): redrawn with them on a TTY, printed after their periodic
   * lines elsewhere. Once set, its row stays (an empty text leaves it blank).
   */
  footer(text: string): void {
    this.footerText = text;
  }

  /** The bars and the footer, each on a cleared row; counts them in `drawn`. */
  private rows(): string {
    const width = this.width();
    let text = '';
    for (const bar of this.bars) text += `\r\x1b[2K${bar.line(width, true)}\n`;
    if (this.footerText !== undefined) text += `\r\x1b[2K${this.footerText.slice(0, width)}\n`;
    this.drawn = this.bars.length + (this.footerText === undefined ? 0 : 1);
    return text;
  }

  private width(): number {
    return Math.max(40, (this.out.columns ?? 100) - 1);
  }

  /** TTY: every bar redrawn in place. Plain: a line for each bar whose interval passed. */
  draw(): void {
    if (this.stopped) return;
    if (!this.tty) {
      const now = this.now();
      let printed = false;
      for (const bar of this.bars) {
        if (bar.state !== 'running' || now - bar.lastPlainAt < this.plainIntervalMs) continue;
        this.printPlain(bar);
        printed = true;
      }
      if (printed && this.footerText) this.out.write(`${this.footerText}\n`);
      return;
    }
    this.out.write(`${this.drawn > 0 ? `\x1b[${this.drawn}A` : ''}${this.rows()}`);
  }

  private printPlain(bar: ProgressBar): void {
    if (this.stopped) return;
    bar.lastPlainAt = this.now();
    this.out.write(`${bar.line(200, false)}\n`);
  }
}
