/**
 * A link: the slot for one connection to one place (a URL, or one lane to a mesh peer), which sessions fill and
 * leave over time. It redials with backoff when it is the dialing side, takes the sessions the peer dials in when it
 * is not, and tells callers waiting for it when a session is ready. Calls never hold on to a link's session: they ask
 * for the current one (`session`), or wait for one (`whenReady`).
 *
 * States: `connecting` (a dial is in progress, or waiting for the peer to dial in), `ready`, `backoff` (waiting to
 * redial after a failure or a loss), `closed` (for good).
 *
 * A dialing link keeps its process alive in every state but `closed` (its socket or its redial timer is ref'd), as a
 * listening server does; `close()` clears the timer and closes every session, so a closed link holds nothing.
 */
import { EventEmitter } from 'node:events';
import { RetireReason, Status } from '../wire/constants.js';
import { connect, type ConnectOptions } from '../endpoint/endpoints.js';
import type { LogFn } from '../log.js';
import { delayUntil } from '../rpc/deadline.js';
import { RpcError } from '../rpc/rpc-error.js';
import type { RpcSession } from '../rpc/rpc-session.js';
import { StatsSum, type SessionStats } from '../rpc/session-stats.js';
import { Backoff, type ResolvedReconnectOptions } from './backoff.js';
import { resolveSessionOptions } from '../session/options.js';
import { MAX_TIMER_MS } from '../timers.js';

const DEFAULT_KEEPALIVE_INTERVAL_MS = resolveSessionOptions().keepaliveIntervalMs;

/**
 * Failures of a dial that retrying will not mend until someone changes a configuration (no common protocol version,
 * our token refused): the link waits its longest backoff and warns at every one. A refusal of who we are
 * (PERMISSION_DENIED: not yet a member of the peer's mesh, or the address answered as another node) is not one of
 * them: nodes are added one by one, so it is an ordinary failed dial, warned of once at the first.
 */
const PERMANENT_FAILURES: ReadonlySet<number> = new Set([Status.FAILED_PRECONDITION, Status.UNAUTHENTICATED]);

/** A connection lost sooner than this after it was made is treated as a failed dial. */
const SHORT_LIVED_MS = 1_000;
/** Failed dials in a row before the link warns (then again whenever the reason changes): peers starting up are normal. */
const FAILURES_BEFORE_WARNING = 5;
/**
 * How long the current connection has to answer a ping when the peer offers a new one that would lose to it: a
 * connection that died silently (no RST) must not keep out its replacement until keepalive notices.
 */
const DUPLICATE_PROBE_MS = 3_000;
/**
 * After a healthy connection is retired (idle, max age) on a link that waits for the peer to dial, how long fail-fast
 * calls wait for the peer's new connection rather than fail.
 */
const RETIRED_REDIAL_WAIT_MS = 3_000;

export type LinkState = 'connecting' | 'ready' | 'backoff' | 'closed';

export interface LinkStateEvent {
  state: LinkState;
  /** The failure that led here (backoff, closed), if any. */
  error?: Error;
  /** In backoff: how long until the next dial. */
  delayMs?: number;
}

export interface DialPlan {
  url: string;
  options: ConnectOptions;
  reconnect: ResolvedReconnectOptions;
  /** Dial only after the link has had no session for this long (the side that normally waits to be dialed). */
  onlyAfterMs?: number;
}

/** Whether `candidate` should replace the link's current session; by default the newer one always wins. */
export type Preference = (candidate: RpcSession, current: RpcSession) => boolean;

interface Waiter {
  /** Fail-fast calls wait only for a dial in progress that follows no failure: they are rejected when it fails. */
  failFast: boolean;
  resolve(session: RpcSession): void;
  reject(error: RpcError): void;
}

export class Link extends EventEmitter<{ state: [LinkStateEvent] }> {
  private currentState: LinkState = 'connecting';
  private current: RpcSession | undefined;
  private lastError: Error | undefined;
  private nextDialAt = 0;
  private readonly waiters = new Set<Waiter>();
  private dialTimer: NodeJS.Timeout | undefined;
  private dialAbort: AbortController | undefined;
  private dial: DialPlan | undefined;
  private backoff: Backoff | undefined;
  private attachedAt = 0;
  private failuresInARow = 0;
  private lastWarned: string | undefined;
  /**
   * Set when a connection is lost or a dial fails, cleared when a session is attached (gRFC A62's sticky
   * TRANSIENT_FAILURE): while set, fail-fast calls do not wait for a redial in progress. A host that has just gone
   * silent (a partition, a crash without a reset) is not expected to answer the next dial, which then hangs until
   * connectTimeoutMs; a fail-fast call fails at once instead. Only a link's first dial, and the peer's redial of a
   * healthy retired connection, are waited for.
   */
  private failing = false;
  /** Armed while the peer is expected to dial in again at once, after a healthy connection was retired. */
  private peerRedialTimer: NodeJS.Timeout | undefined;
  /** Sessions attached once and not yet closed (the current one and ones replaced while their calls finish). */
  private readonly live = new Set<RpcSession>();
  /** What the link's sessions counted, those closed kept (stats()). */
  private readonly counted = new StatsSum();

  constructor(
    /** What the link leads to, for messages: a URL, or `peer n2 (data)`. */
    readonly description: string,
    private readonly log: LogFn,
    private readonly prefer: Preference = () => true,
  ) {
    super();
  }

  /** Makes this link the dialing side: it dials now (or after `plan.onlyAfterMs`) and whenever it has no session. */
  dialWith(plan: DialPlan): void {
    if (this.dial !== undefined || this.currentState === 'closed') return;
    this.dial = plan;
    this.backoff = new Backoff(plan.reconnect);
    if (this.current !== undefined) return;
    const wait = plan.onlyAfterMs ?? 0;
    if (wait <= 0) return this.dialNow();
    // the side that dials only as a fallback is still 'connecting': it expects the peer to dial in first
    this.dialTimer = setTimeout(() => this.dialNow(), wait);
  }

  get state(): LinkState {
    return this.currentState;
  }

  /**
   * The session new calls should use, if one is ready. One that has just stopped taking calls (its GOAWAY is being
   * handled) is not offered, so a retried call never lands on the session that refused it.
   */
  get session(): RpcSession | undefined {
    return this.current?.acceptsCalls === true ? this.current : undefined;
  }

  /**
   * True while a dial (connect + handshake) is in progress that is expected to succeed (nothing has failed since the
   * last connection: `failing`), or while the peer is expected to dial in again at once (a healthy connection was just
   * retired): fail-fast calls wait for either.
   */
  get dialing(): boolean {
    return (this.dialAbort !== undefined && !this.failing) || this.peerRedialTimer !== undefined;
  }

  /** What every session this link has held counted (closed ones too), summed. */
  stats(): SessionStats {
    return this.counted.total(this.live);
  }

  /** A session of the link closed: it leaves `live`, its counts stay in the sum. */
  private retire(session: RpcSession): void {
    this.live.delete(session);
    this.counted.retire(session);
  }

  /** Every session of this link not yet closed, including replaced ones still finishing their calls. */
  get sessions(): ReadonlySet<RpcSession> {
    return this.live;
  }

  /**
   * Offers a session (handshake done) to the link. It becomes the link's session unless the current one is preferred
   * (then the candidate is closed with a GOAWAY saying so, and false is returned). A session it replaces stops taking
   * calls and finishes the ones in flight.
   */
  offer(session: RpcSession): boolean {
    if (session === this.current) return true;
    if (this.currentState === 'closed') {
      session.close({ reason: 'the link is closed' }).catch(() => undefined);
      return false;
    }
    if (!session.acceptsCalls) return false; // already going away: it closes on its own
    if (this.current !== undefined && !this.prefer(session, this.current)) {
      this.keepUnlessCurrentIsDead(session, this.current);
      return false;
    }
    const previous = this.current;
    this.current = session;
    this.attachedAt = performance.now();
    this.backoff?.connected();
    this.failuresInARow = 0;
    this.lastWarned = undefined;
    this.failing = false;
    this.live.add(session);
    clearTimeout(this.dialTimer);
    clearTimeout(this.peerRedialTimer);
    this.dialTimer = this.peerRedialTimer = undefined;
    void session.closed.then(() => this.retire(session));
    void session.goingAway.then(() => this.onGoingAway(session));
    previous?.close({ reason: 'duplicate connection: replaced by a newer one' }).catch(() => undefined);
    this.setState({ state: 'ready' });
    for (const waiter of this.waiters) waiter.resolve(session);
    this.waiters.clear();
    return true;
  }

  /**
   * A ready session, now or once one is: rejects with UNAVAILABLE when the link closes, with CANCELLED or
   * DEADLINE_EXCEEDED when `signal` aborts or `deadline` (ms since epoch) passes first.
   */
  whenReady(signal?: AbortSignal, deadline?: number, failFast = false): Promise<RpcSession> {
    const ready = this.session;
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.currentState === 'closed') return Promise.reject(this.unavailable());
    return new Promise<RpcSession>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => done(undefined, RpcError.from(signal!.reason ?? new DOMException('aborted', 'AbortError')));
      const done = (session: RpcSession | undefined, error?: RpcError): void => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (session !== undefined) resolve(session);
        else reject(error!);
      };
      const waiter: Waiter = { failFast, resolve: (session) => done(session), reject: (error) => done(undefined, error) };
      if (signal?.aborted) return onAbort();
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        timer = setTimeout(
          () => done(undefined, new RpcError(Status.DEADLINE_EXCEEDED, `the deadline passed while waiting for ${this.description} to connect`, { retrySafe: true })),
          delayUntil(deadline),
        );
      }
    });
  }

  /** The error a fail-fast call gets when there is no session: what the link is doing and why. */
  unavailable(): RpcError {
    let why: string;
    if (this.currentState === 'closed') why = 'the link is closed';
    else if (this.currentState === 'backoff') why = `reconnecting in ${Math.max(0, Math.round(this.nextDialAt - performance.now()))} ms`;
    else why = this.dial === undefined ? 'waiting for the peer to connect' : 'connecting';
    const last = this.lastError === undefined ? '' : ` (last error: ${this.lastError.message})`;
    return new RpcError(Status.UNAVAILABLE, `not connected to ${this.description}: ${why}${last}`, { retrySafe: true });
  }

  /** Stops dialing; sessions close gracefully (GOAWAY, calls in flight get graceMs); waiting calls fail UNAVAILABLE. */
  async close(options: { graceMs?: number; reason?: string } = {}): Promise<void> {
    if (this.currentState !== 'closed') {
      clearTimeout(this.dialTimer);
      clearTimeout(this.peerRedialTimer);
      this.peerRedialTimer = undefined;
      this.dialAbort?.abort();
      this.current = undefined;
      this.setState({ state: 'closed' });
      const error = this.unavailable();
      for (const waiter of this.waiters) waiter.reject(error);
      this.waiters.clear();
    }
    await Promise.all([...this.live].map((session) => session.close(options)));
  }

  /**
   * A candidate that loses to the current session is refused as a duplicate, unless the current one fails to answer
   * a ping within DUPLICATE_PROBE_MS: then it is the one that is dead, and the candidate takes its place.
   */
  private keepUnlessCurrentIsDead(candidate: RpcSession, current: RpcSession): void {
    this.live.add(candidate);
    void candidate.closed.then(() => this.retire(candidate));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), DUPLICATE_PROBE_MS);
      timer.unref();
    });
    // a ping refused because 16 of the application's own pings await answers proves nothing against the connection
    const answered = current.ping().then(
      () => true,
      (error: unknown) => error instanceof RpcError && error.code === Status.RESOURCE_EXHAUSTED,
    );
    void Promise.race([answered, timedOut]).then((alive) => {
      clearTimeout(timer);
      if (this.currentState === 'closed') return; // close() closes every live session, the candidate included
      if (this.current === undefined) {
        // the old connection failed outright while we waited (e.g. its ping met an RST): the candidate is what's left
        this.offer(candidate);
        return;
      }
      if (alive || this.current !== current) {
        candidate.close({ reason: `duplicate connection: ${this.description} already has one` }).catch(() => undefined);
        return;
      }
      this.log('info', `${this.description}: the current connection did not answer a ping; the peer's new one replaces it`);
      const cause = new Error('it did not answer a ping while the peer offered a new connection');
      this.current = undefined;
      current.destroy(cause);
      // the candidate may have closed meanwhile: then this is a plain loss (redial, or wait for the peer)
      if (!this.offer(candidate)) this.lost(cause);
    });
  }

  private onGoingAway(session: RpcSession): void {
    if (this.current !== session) return;
    this.current = undefined;
    const peerSaid = session.goawayReason;
    const cause = session.error ?? (peerSaid !== undefined ? new Error(`the peer said: ${peerSaid}`) : undefined);
    // only the peer's GOAWAY says *we* pinged too much; our own ProtocolError with those words means the reverse
    if (peerSaid?.includes('too many pings') === true) this.pingLessOften();
    // healthy, and retired: by the peer (its GOAWAY NO_ERROR says idle or max age) or by this side's graceful close
    const retired = session.error === undefined && (peerSaid === undefined || peerSaid === RetireReason.IDLE || peerSaid === RetireReason.MAX_AGE);
    this.lost(cause, retired);
  }

  /** gRFC A8: the peer allows fewer pings than our keepalive sends; ping half as often on the next connections. */
  private pingLessOften(): void {
    if (this.dial === undefined) return;
    const interval = Math.min(2 * (this.dial.options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS), MAX_TIMER_MS);
    this.dial = { ...this.dial, options: { ...this.dial.options, keepaliveIntervalMs: interval } };
    this.log('warn', `${this.description}: the peer closed the connection for too many pings; keepaliveIntervalMs is now ${interval}`);
  }

  /**
   * The link has no session any more: redial after a backoff when it dials, else wait for the peer. A `retired`
   * connection that lasted is replaced at once instead (replaceRetired).
   */
  private lost(cause: Error | undefined, retired = false): void {
    if (this.currentState === 'closed') return;
    this.lastError = cause;
    this.log('info', `${this.description}: connection lost${cause ? `: ${cause.message}` : ''}`);
    if (retired && performance.now() - this.attachedAt >= SHORT_LIVED_MS) return this.replaceRetired(cause);
    this.failing = true;
    if (this.dial === undefined || this.backoff === undefined) {
      this.setState({ state: 'connecting', error: cause });
      return;
    }
    if (this.dialAbort !== undefined) {
      // a dial is already under way (an inbound session was attached meanwhile): its outcome decides what is next
      this.setState({ state: 'connecting', error: cause });
      return;
    }
    // A connection the peer drops at once (a duplicate, closed right after its handshake) counts as a failed dial, so
    // the backoff grows instead of redialing every few seconds forever. (A peer that refuses us in the handshake,
    // unknown node or wrong token, makes the dial itself fail: dialFailed.)
    const shortLived = performance.now() - this.attachedAt < SHORT_LIVED_MS;
    const delay = shortLived ? this.backoff.afterFailure() : this.backoff.afterLoss();
    if (shortLived && cause !== undefined) this.noteFailure(cause, delay);
    // the side that only dials as a fallback waits its turn on top of that, so the designated dialer comes first
    this.scheduleDial(delay + (this.dial.onlyAfterMs ?? 0), cause);
  }

  /**
   * A healthy connection was retired (the peer's GOAWAY said idle or max age, or this side closed it gracefully, as an
   * acceptor's maxConnectionAgeMs does): the designated dialer redials at once, without backoff (the acceptor's
   * max-age jitter already spreads a fleet); a link that waits for the peer expects it to, and meanwhile fail-fast
   * calls wait for the new connection rather than fail, for up to RETIRED_REDIAL_WAIT_MS (its fallback dial, if any,
   * is scheduled as at the start).
   */
  private replaceRetired(cause: Error | undefined): void {
    this.backoff?.afterLoss(); // failures start over; dials that fail from here back off as after a loss
    const waitMs = this.dial === undefined ? Infinity : (this.dial.onlyAfterMs ?? 0);
    if (waitMs <= 0) {
      if (this.dialAbort === undefined) this.dialNow();
      else this.setState({ state: 'connecting', error: cause }); // a dial already under way decides what is next
      return;
    }
    clearTimeout(this.peerRedialTimer);
    this.peerRedialTimer = setTimeout(() => {
      this.peerRedialTimer = undefined;
      if (!this.dialing) this.rejectFailFastWaiters();
    }, RETIRED_REDIAL_WAIT_MS);
    this.peerRedialTimer.unref();
    this.setState({ state: 'connecting', error: cause });
    if (this.dial !== undefined && this.dialAbort === undefined) {
      clearTimeout(this.dialTimer);
      this.dialTimer = setTimeout(() => this.dialNow(), waitMs);
    }
  }

  private scheduleDial(delayMs: number, error: Error | undefined): void {
    clearTimeout(this.dialTimer); // one dial loop per link, ever
    this.dialTimer = undefined;
    if (delayMs <= 0) {
      this.dialNow();
      return;
    }
    this.nextDialAt = performance.now() + delayMs;
    this.setState({ state: 'backoff', error, delayMs });
    // not unref'd: a dialing link keeps its process alive until close(), like a listening server; an agent whose
    // controller went away must keep redialing, not exit 0 because nothing else was left to do
    this.dialTimer = setTimeout(() => this.dialNow(), delayMs);
  }

  private dialNow(): void {
    this.dialTimer = undefined;
    if (this.currentState === 'closed' || this.current !== undefined || this.dialAbort !== undefined) return;
    const plan = this.dial!;
    this.setState({ state: 'connecting' });
    const abort = new AbortController();
    this.dialAbort = abort;
    connect(plan.url, { ...plan.options, signal: abort.signal }).then(
      (session) => {
        if (this.dialAbort === abort) this.dialAbort = undefined;
        // closed at once (its GOAWAY came right after its HELLO: a duplicate): a failed dial, or the link would wait forever
        if (!this.offer(session) && this.current === undefined) this.dialFailed(new Error(`${this.description} closed the connection at once: ${session.goawayReason ?? 'no reason given'}`));
      },
      (error: RpcError) => {
        if (this.dialAbort === abort) this.dialAbort = undefined;
        this.dialFailed(error);
      },
    );
  }

  private dialFailed(error: Error): void {
    if (this.currentState === 'closed' || this.current !== undefined) return;
    this.lastError = error;
    this.failing = true;
    // no common version, a TLS/plain mismatch, or our token or certificate refused: a redial fails alike until someone
    // changes a configuration, so wait the longest and say so every time; a refusal of who we are is said once, at
    // once, and redialed as any failure
    const code = error instanceof RpcError ? error.code : undefined;
    const permanent = code !== undefined && PERMANENT_FAILURES.has(code);
    const delay = permanent ? this.backoff!.afterPermanentFailure() : this.backoff!.afterFailure();
    this.noteFailure(error, delay, permanent ? 'always' : code === Status.PERMISSION_DENIED ? 'first' : 'later');
    this.scheduleDial(Math.max(1, delay), error);
  }

  /** Warns once a streak of failures is long enough to be news, and again whenever its reason changes. */
  /**
   * Counts a failed dial and warns of it: `always` at every one; `first` at the first with this message; `later` (a
   * peer starting up is normal) once FAILURES_BEFORE_WARNING have failed in a row, then when the message changes.
   */
  private noteFailure(error: Error, delayMs: number, warn: 'always' | 'first' | 'later' = 'later'): void {
    this.failuresInARow++;
    const due = warn === 'always' || (error.message !== this.lastWarned && (warn === 'first' || this.failuresInARow >= FAILURES_BEFORE_WARNING));
    if (!due) return;
    this.lastWarned = error.message;
    this.log('warn', `${this.description}: ${this.failuresInARow} failed connection attempt(s) in a row; last: ${error.message}; retrying in ${Math.round(delayMs)} ms`);
  }

  private setState(event: LinkStateEvent): void {
    this.currentState = event.state;
    // a fail-fast call waits for a dial that is expected to succeed, never for one after a failure (`failing`)
    if (event.state === 'backoff' || (this.failing && !this.dialing)) this.rejectFailFastWaiters();
    this.emit('state', event);
  }

  /** Fail-fast calls wait only for a connection that is coming: once none is, they fail. */
  private rejectFailFastWaiters(): void {
    const error = this.unavailable();
    for (const waiter of this.waiters) {
      if (!waiter.failFast) continue;
      this.waiters.delete(waiter);
      waiter.reject(error);
    }
  }
}
