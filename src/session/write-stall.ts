/**
 * The write-stall watchdog (T-D5, CVE-2019-9517): a peer that keeps its TCP window closed while its credit says "send"
 * would hold our connection, and what is buffered for it, forever. Once the transport asks us to wait, the watch
 * expects progress within `timeoutMs`: a drain, or at least fewer bytes waiting in the transport than when it last
 * looked (where the transport can tell). None for a whole timeout: `stalled` is called. One timer per connection, armed
 * only while blocked and re-armed at most once per timeout, never per write. Knows nothing of frames or sessions.
 *
 * | state    | event                                      | next                                      |
 * |----------|--------------------------------------------|-------------------------------------------|
 * | FLOWING  | the transport asked us to wait             | BLOCKED (timer armed unless one is)        |
 * | BLOCKED  | the transport drained                      | FLOWING (a running timer lapses)           |
 * | BLOCKED  | timer: fewer bytes wait than last time     | BLOCKED (timer re-armed)                   |
 * | BLOCKED  | timer: a whole timeout with no progress    | STOPPED (`stalled` called)                 |
 * | any      | stop()                                     | STOPPED                                   |
 */

export class WriteStallWatch {
  /** When the transport last asked us to wait or last made progress (ms, performance.now()); -1 while flowing. */
  private since = -1;
  /** Bytes the transport held then, when it can tell (else -1). */
  private pendingThen = -1;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly timeoutMs: number,
    /** Bytes waiting in the transport, when it can tell. */
    private readonly pendingBytes: () => number | undefined,
    private readonly stalled: (waitedMs: number) => void,
  ) {}

  /** The transport asked us to wait. */
  blocked(): void {
    if (this.since >= 0 || this.timeoutMs === 0 || this.stopped) return;
    this.since = performance.now();
    this.pendingThen = this.pendingBytes() ?? -1;
    if (this.timer === undefined) this.arm(this.timeoutMs);
  }

  /** The transport took everything. */
  drained(): void {
    this.since = -1;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.check, ms);
    this.timer.unref();
  }

  private readonly check = (): void => {
    this.timer = undefined;
    if (this.since < 0 || this.stopped) return; // drained meanwhile: the timer lapses
    const now = performance.now();
    const pending = this.pendingBytes() ?? -1;
    if (pending >= 0 && pending < this.pendingThen) {
      this.since = now; // slow, but moving
      this.pendingThen = pending;
    }
    const waited = now - this.since;
    if (waited < this.timeoutMs) {
      this.arm(this.timeoutMs - waited);
      return;
    }
    this.stop();
    this.stalled(waited);
  };
}
