/**
 * Time limits on one connection. Each side: a frame that has started arriving must complete within frameTimeoutMs, or
 * the connection fails with GW_ERR_FRAME_TIMEOUT (a peer holding half a frame holds the connection for nothing). The
 * accepting side only (gRFC A9's server connection management): a connection with no stream for
 * maxConnectionIdleMs, or older than maxConnectionAgeMs +- 10 % (jitter, so connections made together do not all
 * retire together), is retired with a graceful GOAWAY NO_ERROR ("idle", "max connection age"); streams in flight get
 * maxConnectionAgeGraceMs. Knows nothing of what frames mean or of the session's phases: it reads the decoder's
 * progress and the stream table's size, and asks the session to fail or to retire.
 *
 * No timer per frame or per read. Per read, `afterRead` makes two comparisons (is a frame timer armed? is the decoder
 * between frames?); per frame, the decoder increments a counter. One frame timer per connection is armed when a read
 * leaves a frame unfinished and none is armed; it checks four times per frameTimeoutMs: frames completed since the last
 * check mean progress, and the frame pending now is timed from that check. So a bulk transfer, whose reads mostly end
 * mid-frame, keeps one timer that fires four times per frameTimeoutMs, and a stalled frame fails between frameTimeoutMs
 * and 1.25 x frameTimeoutMs after its first byte. Idle is checked the same way: four checks per maxConnectionIdleMs,
 * comparing the stream table's size and the stream ids used, so opening and closing streams costs nothing here.
 *
 * | timer | armed                                         | a check finds                              | then                          |
 * |-------|-----------------------------------------------|--------------------------------------------|-------------------------------|
 * | frame | a read leaves a frame unfinished, none armed, | the decoder between frames                 | disarmed (a read re-arms it)  |
 * |       | frameTimeoutMs > 0                            | frames completed since the last check      | checks again, count restarts  |
 * |       |                                               | none, for the 4th check in a row, and none | session fails:                |
 * |       |                                               | after the turn's reads either              | GW_ERR_FRAME_TIMEOUT          |
 * | idle  | handshake done, acceptor, idle limit > 0      | streams open, or opened since the last     | checks again, count restarts  |
 * |       |                                               | no stream, none opened, 4th check in a row | retire "idle"                 |
 * | age   | handshake done, acceptor, age limit > 0:      | (fires once)                               | retire "max connection age"   |
 * |       | age +- 10 %                                   |                                            | with the age grace            |
 * | all   | stop(): the session drained, failed, or its   |                                            | cleared                       |
 * |       | transport closed; retiring clears idle, age   |                                            |                               |
 */
import { RetireReason } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { limitTimer } from '../timers.js';

/** Checks per limit: a stall or an idle spell is caught within 1.25 x its limit. */
const CHECKS_PER_LIMIT = 4;
/** maxConnectionAgeMs is applied within +- this fraction, uniformly (gRFC A9: +-10 %). */
export const AGE_JITTER = 0.1;

export interface LifetimeOptions {
  /** 0 disables. */
  frameTimeoutMs: number;
  /** 0 disables; the accepting side only. */
  maxConnectionIdleMs: number;
  /** 0 disables; the accepting side only. */
  maxConnectionAgeMs: number;
  /** Infinity waits for the streams in flight however long they take. */
  maxConnectionAgeGraceMs: number;
}

/** What the frame timer reads of the decoder. */
export interface FrameProgress {
  readonly atFrameBoundary: boolean;
  readonly framesCompleted: number;
}

/** The part of the session the limits read and act through. */
export interface LifetimeHost {
  /** Streams in the table now, both directions. */
  streamCount(): number;
  /** A number that grows whenever a stream is opened, either direction (not a count: a sum of ids will do). */
  streamsOpened(): number;
  /** A frame did not complete in time: the connection fails. */
  fail(error: ProtocolError): void;
  /** Close gracefully: GOAWAY NO_ERROR with `reason`, streams in flight get `graceMs` (the session's default if none). */
  retire(reason: string, graceMs?: number): void;
}

/** The age at which one connection retires: `ageMs` +- AGE_JITTER, uniformly. */
export function jitteredAgeMs(ageMs: number, random: () => number = Math.random): number {
  return Math.round(ageMs * (1 + AGE_JITTER * (2 * random() - 1)));
}

export class Lifetime {
  private frameTimer: NodeJS.Timeout | undefined;
  /** decoder.framesCompleted at the last check (or when the timer was armed). */
  private framesAtCheck = 0;
  /** Checks in a row that found the same frame still pending. */
  private stalledChecks = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private emptyAtCheck = false;
  private openedAtCheck = 0;
  /** Checks in a row that found no stream, and none opened since the check before. */
  private idleChecks = 0;
  private ageTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly options: LifetimeOptions,
    /** Idle and age apply to the accepting side only. */
    private readonly acceptor: boolean,
    private readonly decoder: FrameProgress,
    private readonly host: LifetimeHost,
    private readonly random: () => number = Math.random,
  ) {}

  /** After every read: arms the frame timer if the read left a frame unfinished and none is armed. */
  afterRead(): void {
    if (this.frameTimer === undefined && !this.decoder.atFrameBoundary && !this.stopped) this.armFrameTimer();
  }

  /** The handshake is done: on the accepting side, idle and age start counting. */
  start(): void {
    if (!this.acceptor || this.stopped) return;
    const idleMs = this.options.maxConnectionIdleMs;
    if (idleMs > 0) {
      this.emptyAtCheck = this.host.streamCount() === 0;
      this.openedAtCheck = this.host.streamsOpened();
      this.idleTimer = setInterval(this.checkIdle, checkPeriod(idleMs));
      this.idleTimer.unref();
    }
    const ageMs = this.options.maxConnectionAgeMs;
    if (ageMs > 0) {
      // past what a timer can count, an age never comes
      this.ageTimer = limitTimer(jitteredAgeMs(ageMs, this.random), () => this.retire(RetireReason.MAX_AGE, this.options.maxConnectionAgeGraceMs));
      this.ageTimer?.unref();
    }
  }

  /** The session fails or has closed: every timer is cleared, and none is armed again. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.frameTimer);
    this.frameTimer = undefined;
    this.stopRetirement();
  }

  private armFrameTimer(): void {
    const timeoutMs = this.options.frameTimeoutMs;
    if (timeoutMs === 0) return;
    this.framesAtCheck = this.decoder.framesCompleted;
    this.stalledChecks = 0;
    this.frameTimer = setTimeout(this.checkFrame, checkPeriod(timeoutMs));
    this.frameTimer.unref();
  }

  private readonly checkFrame = (): void => {
    const timer = this.frameTimer!;
    if (this.stopped) return;
    if (this.decoder.atFrameBoundary) {
      this.frameTimer = undefined; // nothing pending: the next read that leaves a frame unfinished arms it again
      return;
    }
    const completed = this.decoder.framesCompleted;
    if (completed !== this.framesAtCheck || ++this.stalledChecks < CHECKS_PER_LIMIT) {
      if (completed !== this.framesAtCheck) {
        this.framesAtCheck = completed; // progress: the frame pending now is timed from here
        this.stalledChecks = 0;
      }
      timer.refresh();
      return;
    }
    // Timers run before the poll phase reads sockets: after a stall of our own event loop the rest of the frame may
    // be waiting unread, so look once more after this turn's reads (setImmediate runs after the poll phase).
    setImmediate(() => {
      if (this.stopped || this.frameTimer !== timer) return;
      if (this.decoder.atFrameBoundary) {
        this.frameTimer = undefined;
      } else if (this.decoder.framesCompleted !== this.framesAtCheck) {
        this.framesAtCheck = this.decoder.framesCompleted;
        this.stalledChecks = 0;
        timer.refresh();
      } else {
        const timeoutMs = this.options.frameTimeoutMs;
        this.host.fail(
          new ProtocolError(ProtocolErrorCode.FRAME_TIMEOUT, `a frame started arriving but did not complete within frameTimeoutMs (${timeoutMs} ms)`),
        );
      }
    });
  };

  private readonly checkIdle = (): void => {
    const opened = this.host.streamsOpened();
    const empty = this.host.streamCount() === 0;
    // idle since the last check only if the table was empty then, is empty now, and no stream came and went between
    if (empty && this.emptyAtCheck && opened === this.openedAtCheck) this.idleChecks++;
    else this.idleChecks = 0;
    this.emptyAtCheck = empty;
    this.openedAtCheck = opened;
    if (this.idleChecks >= CHECKS_PER_LIMIT) this.retire(RetireReason.IDLE);
  };

  private retire(reason: string, graceMs?: number): void {
    this.stopRetirement();
    if (!this.stopped) this.host.retire(reason, graceMs);
  }

  private stopRetirement(): void {
    clearInterval(this.idleTimer);
    clearTimeout(this.ageTimer);
    this.idleTimer = this.ageTimer = undefined;
  }
}

/** A check every quarter of `limitMs`, rounded up: four checks in a row span at least the limit. */
function checkPeriod(limitMs: number): number {
  return Math.ceil(limitMs / CHECKS_PER_LIMIT);
}
