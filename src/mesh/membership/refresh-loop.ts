/**
 * One read of a membership source now, then again `intervalMs` after each read ends: never two reads at once (a slow
 * DNS server or disk cannot pile them up), and answers at least `intervalMs` apart (the flap guard counts on it). The
 * timer is unref'd: a source never keeps a process alive (the mesh's listener and links do). Knows nothing of what
 * is read.
 */
export class RefreshLoop {
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** Asked for while a read was under way: the source may have changed after that read began. */
  private again = false;

  constructor(
    private readonly intervalMs: number,
    /** One read; it reports its own failures (it must not reject). */
    private readonly read: () => Promise<void>,
  ) {}

  start(): void {
    if (this.started) throw new Error('a membership source is already started: give each mesh its own source');
    this.started = true;
    void this.now();
  }

  /**
   * Reads now; asked while a read is under way, reads again right after it (the source may have changed after that
   * read began) and returns the read under way. The next timed read comes `intervalMs` after the last. Nothing once
   * stopped.
   */
  now(): Promise<void> {
    if (!this.started || this.stopped) return Promise.resolve();
    if (this.reading !== undefined) {
      this.again = true;
      return this.reading;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.reading = this.read()
      .catch(() => undefined)
      .finally(() => {
        this.reading = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          void this.now();
          return;
        }
        this.timer = setTimeout(() => void this.now(), this.intervalMs);
        this.timer.unref();
      });
    return this.reading;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Whether a timer is armed (tests: none once stopped). */
  get armed(): boolean {
    return this.timer !== undefined;
  }
}
