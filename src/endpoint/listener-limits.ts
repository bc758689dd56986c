/**
 * A listener's caps on what unknown clients can make it hold (ListenOptions.maxConnections, maxPendingHandshakes),
 * and the one log line per burst of refusals. Knows nothing of what a session does once its handshake is done.
 *
 * - **maxConnections**: sockets open at once, whatever their state (in their handshake, serving, lingering after a
 *   close). node:net closes each socket beyond it as it is accepted, before a Socket or a session is made for it.
 * - **maxPendingHandshakes**: accepted connections whose peer has not completed its HELLO. Beyond it the **oldest**
 *   pending handshake is closed to make room, not the new one: a real client's handshake takes one round trip and is
 *   done long before it becomes the oldest, so stalled handshakes (a slowloris at 1 byte per 10 s) keep cycling out
 *   and cannot lock real clients out; refusing the newest instead would let a full cap of stalled sockets refuse
 *   everyone until handshakeTimeoutMs frees them. Nothing is written to a closed socket: it is destroyed.
 * - **Logging**: the first refusal of a burst is logged at once (a `warn` line with GW_ERR_ENHANCE_YOUR_CALM and the
 *   option's name); the ones that follow are counted, and while they go on one line every LOG_WINDOW_MS gives the
 *   count: never a line per socket.
 */
import type { LogFn } from '../log.js';
import { ProtocolErrorCode } from '../wire/errors.js';
import { MAX_TIMER_MS } from '../timers.js';

export interface ListenerLimitOptions {
  /**
   * Sockets the listener holds at once (in their handshake, serving, or closing); beyond, a new connection is closed
   * as it is accepted. Default 10 000 (keep it below the process's file descriptor limit, `ulimit -n`); Infinity: no cap.
   */
  maxConnections?: number;
  /**
   * Accepted connections whose handshake is not done yet; beyond, the oldest of them is closed. Default 1 000;
   * Infinity: no cap (handshakeTimeoutMs still bounds each one).
   */
  maxPendingHandshakes?: number;
}

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_MAX_PENDING_HANDSHAKES = 1_000;
/** While refusals go on, one log line per this long. */
const LOG_WINDOW_MS = 10_000;

/** @internal Throws a RangeError naming the option unless it is undefined, an integer 1 - 2^31-1, or Infinity. */
export function checkListenerLimits(options: ListenerLimitOptions): void {
  for (const name of ['maxConnections', 'maxPendingHandshakes'] as const) {
    const value: unknown = options[name];
    if (value === undefined || value === Infinity || (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_TIMER_MS)) continue;
    throw new RangeError(`${name} must be an integer in 1..${MAX_TIMER_MS}, or Infinity for no cap, got ${String(value)}`);
  }
}

/** @internal One listener's caps. */
export class ListenerLimits {
  readonly maxConnections: number;
  private readonly maxPending: number;
  /** Closers of the connections still in their handshake, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<() => void>();
  private readonly refusedLog: RefusalLog;
  private readonly evictedLog: RefusalLog;

  constructor(options: ListenerLimitOptions, url: () => string, log: LogFn) {
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxPending = options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    const calm = ProtocolErrorCode.ENHANCE_YOUR_CALM;
    this.refusedLog = new RefusalLog(log, (count, first) =>
      `${calm}: ${url()} ${first ? 'refused a connection' : `refused ${count} more connection(s) in the last ${LOG_WINDOW_MS / 1000} s`}: ${this.maxConnections} were open (maxConnections)`,
    );
    this.evictedLog = new RefusalLog(log, (count, first) =>
      `${calm}: ${url()} ${first ? 'closed a connection' : `closed ${count} more connection(s) in the last ${LOG_WINDOW_MS / 1000} s`} still in its handshake, the oldest, to make room: ${this.maxPending} handshakes were pending (maxPendingHandshakes)`,
    );
  }

  /**
   * A connection was accepted and its handshake begins: it counts as pending until `ready` settles. If that makes too
   * many, the oldest pending one is closed (`close`: destroys its transport).
   */
  handshakeStarted(ready: Promise<unknown>, close: () => void): void {
    if (this.pending.size >= this.maxPending) {
      const oldest = this.pending.values().next().value!;
      this.pending.delete(oldest);
      oldest();
      this.evictedLog.count();
    }
    this.pending.add(close);
    const done = (): void => void this.pending.delete(close);
    ready.then(done, done);
  }

  /** node:net closed a connection beyond maxConnections. */
  readonly dropped = (): void => {
    this.refusedLog.count();
  };

  /** The listener closed: no more lines. */
  close(): void {
    this.refusedLog.stop();
    this.evictedLog.stop();
  }
}

/** One line for the first refusal of a burst, then one per LOG_WINDOW_MS with the count while they go on. */
class RefusalLog {
  private counted = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: LogFn,
    private readonly line: (count: number, first: boolean) => string,
  ) {}

  count(): void {
    if (this.timer !== undefined) {
      this.counted++;
      return;
    }
    this.log('warn', this.line(1, true));
    this.openWindow();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private openWindow(): void {
    this.counted = 0;
    this.timer = setTimeout(() => {
      if (this.counted === 0) {
        this.timer = undefined; // quiet for a whole window: the burst is over, the next refusal is news again
        return;
      }
      this.log('warn', this.line(this.counted, false));
      this.openWindow();
    }, LOG_WINDOW_MS);
    this.timer.unref();
  }
}
