/**
 * Deadline arithmetic, in one place: a call's time budget from its `timeoutMs` and `deadline`, the relative deadline
 * an OPEN carries and the handler's deadline made from it, and the timers that enforce them. Everything else asks here;
 * nothing else adds, clamps or rounds milliseconds. Knows nothing of streams or calls.
 *
 * Two clocks meet here on purpose: deadlines are `Date.now()` timestamps (a caller may pass a Date), while what travels
 * is relative (the peers' clocks need not agree), and timers take a delay.
 */
import { MAX_TIMER_MS } from '../timers.js';
import { MAX_DEADLINE_MS } from '../wire/constants.js';

/** What a caller may say about time: a relative budget, an absolute deadline, or both (the earlier wins). */
export interface TimeLimit {
  timeoutMs?: number;
  deadline?: Date | number;
}

/** Ms left of a call's budget, from now: the earlier of `timeoutMs` and `deadline`; undefined when neither is set. */
export function budgetOf(limit: TimeLimit | undefined): number | undefined {
  if (limit === undefined) return undefined;
  let budget = limit.timeoutMs;
  if (limit.deadline !== undefined) {
    const left = timestampOf(limit.deadline) - Date.now();
    budget = budget === undefined ? left : Math.min(budget, left);
  }
  return budget;
}

/**
 * The same budget fixed as a `Date.now()` timestamp: what a deadline must be once it spans more than one attempt
 * (waiting for a connection, a retry), so each attempt gets what is left rather than the whole budget again.
 */
export function deadlineOf(limit: TimeLimit | undefined): number | undefined {
  const budget = budgetOf(limit);
  return budget === undefined ? undefined : Date.now() + budget;
}

/**
 * The same limit with its budget fixed as an absolute deadline (a copy; the caller's object is left alone), for a call
 * that may wait for a connection or be retried. Undefined and limitless ones are returned as they are.
 */
export function withFixedDeadline<T extends TimeLimit>(limit: T | undefined): T | undefined {
  const deadline = deadlineOf(limit);
  return deadline === undefined ? limit : { ...limit!, timeoutMs: undefined, deadline };
}

/** A deadline given as a Date or a timestamp, as a timestamp. */
export function timestampOf(deadline: Date | number): number {
  return typeof deadline === 'number' ? deadline : deadline.getTime();
}

/** True when a budget has run out before the call started (`timeoutMs: 0` included): the call fails at once. */
export function expired(budget: number | undefined): boolean {
  return budget !== undefined && !(budget > 0);
}

/** The relative deadline an OPEN carries: whole ms (rounded up), capped at what the wire can say; 0 = none. */
export function wireDeadlineMs(budget: number | undefined): number {
  return budget === undefined ? 0 : Math.min(Math.ceil(budget), MAX_DEADLINE_MS);
}

/** The handler's deadline from an OPEN's relative ms, as a local timestamp; undefined when the caller set none. */
export function deadlineFromWire(deadlineMs: number): number | undefined {
  return deadlineMs > 0 ? Date.now() + deadlineMs : undefined;
}

/** What a deadline timer tells when it fires. */
export interface DeadlineWatcher {
  onDeadline(): void;
}

/**
 * A timer that calls `watcher.onDeadline()` once `ms` have passed; none when there is no budget or it is beyond
 * MAX_TIMER_MS (such a deadline is weeks away: the connection's keepalive will have had its say long before). The
 * watcher travels as setTimeout's argument: no closure per call.
 */
export function deadlineTimer(ms: number | undefined, watcher: DeadlineWatcher): NodeJS.Timeout | undefined {
  return ms !== undefined && ms <= MAX_TIMER_MS ? setTimeout(fireDeadline, ms, watcher) : undefined;
}

function fireDeadline(watcher: DeadlineWatcher): void {
  watcher.onDeadline();
}

/** The delay until `deadline` for a setTimeout: never negative, never more than it honours. */
export function delayUntil(deadline: number): number {
  return Math.max(0, Math.min(deadline - Date.now(), MAX_TIMER_MS));
}
