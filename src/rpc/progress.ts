/**
 * The bulk transfer watchdog (zrepl #424): a peer whose heartbeats keep the connection alive can still leave a
 * transfer stuck. Fails the call when its bytes have not moved for `timeoutMs` while it was waiting on the peer; a
 * stall of our own making (a reader that does not read, a source that does not produce) is never the peer's fault.
 */
import { Status } from '../wire/constants.js';
import type { Stream } from '../session/stream.js';
import { MAX_TIMER_MS } from '../timers.js';
import { RpcError } from './rpc-error.js';

/** How often the watchdog looks, as a fraction of its timeout: a stall is caught within 1.25 x the timeout. */
const CHECKS_PER_TIMEOUT = 4;

/** The call a watchdog looks after: an object, so a watchdog makes no closure per call. */
export interface ProgressWatched {
  /** True while the transfer waits on the peer (nothing queued for our reader, or our bytes wait for credit). */
  waitingOnPeer(): boolean;
  /** No progress for the timeout while waiting on the peer: the call fails with `error` (DEADLINE_EXCEEDED). */
  progressStalled(error: RpcError): void;
}

export class ProgressWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private seen = -1;
  private stillSince = 0;

  constructor(
    private readonly stream: Stream,
    private readonly timeoutMs: number,
    private readonly watched: ProgressWatched,
    /** What the peer failed to do, for the message: 'send any bytes' or 'read (grant credit)'. */
    private readonly stall: 'sending' | 'reading',
  ) {
    // 0 disables; so does anything past what setInterval can count (Infinity included), which would tick every 1 ms
    if (!(timeoutMs > 0) || timeoutMs > MAX_TIMER_MS) return;
    this.timer = setInterval(checkWatchdog, Math.max(5, Math.floor(timeoutMs / CHECKS_PER_TIMEOUT)), this);
    this.timer.unref();
    this.stillSince = performance.now();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look, every quarter of the timeout (checkWatchdog). */
  check(): void {
    const now = performance.now();
    if (this.stream.progress !== this.seen || !this.watched.waitingOnPeer()) {
      this.seen = this.stream.progress;
      this.stillSince = now;
      return;
    }
    if (now - this.stillSince < this.timeoutMs) return;
    this.stop();
    this.watched.progressStalled(
      new RpcError(
        Status.DEADLINE_EXCEEDED,
        this.stall === 'sending'
          ? `the transfer made no progress for ${this.timeoutMs} ms (progressTimeoutMs): the peer is connected but sent no bytes`
          : `the transfer made no progress for ${this.timeoutMs} ms (progressTimeoutMs): the peer is connected but read none of our bytes (no credit)`,
      ),
    );
  }
}

/** The watchdog travels as setInterval's argument: no closure per call. */
function checkWatchdog(watchdog: ProgressWatchdog): void {
  watchdog.check();
}
