/**
 * When a membership source is read: once at start, then `intervalMs` after each read ends, and sooner when asked
 * (a watch event, refresh()) — but never two reads at once (a slow DNS server or disk cannot pile them up) and never
 * a read less than MIN_READ_GAP_MS after the previous one ended (a file rewritten many times a second, or a storm of
 * refresh() calls, costs at most one read a second). The timer is unref'd — a source never keeps a process alive (the
 * mesh's listener and links do) — except while a caller of now() awaits its read (at most MIN_READ_GAP_MS: a
 * `await source.refresh()` must end). Knows nothing of what is read.
 *
 * | state   | soon() / now() (asked)                        | the timer fires | the read ends                                              |
 * |---------|-----------------------------------------------|-----------------|------------------------------------------------------------|
 * | idle    | reading, or waiting until the gap has passed  | reading         | -                                                          |
 * | reading | remembered: the next read is at the gap's end | -               | idle; the timer armed for the gap if asked, else intervalMs |
 *
 * stop() from any state: no timer; callers of now() waiting for a read are let go.
 */
import { MIN_INTERVAL_MS } from './membership.js';

/** @internal The least time between the end of one read and the start of the next, however they are asked for. */
export const MIN_READ_GAP_MS = MIN_INTERVAL_MS;

export class RefreshLoop {
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  /** A read was asked for that has not begun yet. */
  private asked = false;
  private started = false;
  private stopped = false;
  /** When the last read ended (performance.now()). */
  private lastEnd = -Infinity;
  /** Callers of now() waiting for a read that begins after their call. */
  private waiting: Array<() => void> = [];

  constructor(
    private readonly intervalMs: number,
    /** One read; it reports its own failures (it must not reject). */
    private readonly read: () => Promise<void>,
    private readonly minGapMs: number = MIN_READ_GAP_MS,
  ) {}

  start(): void {
    if (this.started) throw new Error('a membership source is already started: give each mesh its own source');
    this.started = true;
    this.begin();
  }

  /**
   * Asks for a read; resolves once a read that began after this call has ended (so what it reads is at least as new
   * as the source was at the call): at once if none is under way and the last ended MIN_READ_GAP_MS ago or more, else
   * at the gap's end. The next timed read comes `intervalMs` after it. Resolves at once when not started or stopped.
   */
  now(): Promise<void> {
    if (!this.started || this.stopped) return Promise.resolve();
    const read = new Promise<void>((resolve) => this.waiting.push(resolve));
    this.soon();
    return read;
  }

  /** Asks for a read, as now() does, without waiting for it (a watch event). */
  soon(): void {
    if (!this.started || this.stopped) return;
    this.asked = true;
    if (!this.reading) this.arm(this.lastEnd + this.minGapMs - performance.now());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.letGo(this.waiting);
    this.waiting = [];
  }

  /** Whether a timer is armed (tests: none once stopped). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** The next read in `ms` (at once when 0 or less), instead of when the timer said. */
  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (ms <= 0) {
      this.begin();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.begin();
    }, ms);
    if (this.waiting.length === 0) this.timer.unref();
  }

  private begin(): void {
    if (this.stopped) return;
    const served = this.waiting;
    this.waiting = [];
    this.asked = false;
    this.reading = true;
    void this.read()
      .catch(() => undefined)
      .finally(() => {
        this.reading = false;
        this.lastEnd = performance.now();
        this.letGo(served);
        if (!this.stopped) this.arm(this.asked ? this.minGapMs : this.intervalMs);
      });
  }

  private letGo(callers: Array<() => void>): void {
    for (const resolve of callers) resolve();
  }
}
