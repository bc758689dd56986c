/**
 * Deadline defaults per method, one interceptor per side. The client's gives a call that has no deadline (neither
 * `timeoutMs` nor `deadline`) one from a table, so no call waits for ever by omission. The server's caps how long a
 * handler may run, whatever the caller asked: when the caller's deadline is later than the cap, or absent, the handler
 * sees the cap as its `ctx.deadline` and `ctx.signal`, and the call fails DEADLINE_EXCEEDED when it passes. Both take
 * a table keyed by `service/method`, `service/*` or `*` (method-table.ts).
 *
 * The server cap's per-call state (only for a call the cap shortens):
 * | state   | event                                        | next                                                  |
 * |---------|----------------------------------------------|-------------------------------------------------------|
 * | running | the handler's answer settles (unary kinds), or its responses / body end | done: timer cleared        |
 * | running | the cap's timer fires                        | expired: signal aborts, the call fails DEADLINE_EXCEEDED, a pending or next read of the responses rejects, the source is closed |
 * | running | the call's own signal aborts (cancel, deadline, lost) | done: the handler's signal aborts with that reason |
 */
import { Status } from '../../wire/constants.js';
import { MAX_TIMER_MS } from '../../timers.js';
import type { ClientInterceptor } from '../client/outgoing-call.js';
import { RpcError } from '../rpc-error.js';
import type { HandlerContext } from '../server/context.js';
import type { HandlerResult, IncomingCall, ServerInterceptor, ServerNext } from '../server/interceptor.js';
import { ObservedIterator } from './call-end.js';
import { checkMethodTable, lookupMethod, MethodMemo, type MethodTable } from './method-table.js';

function checkMs(value: unknown, where: string): void {
  if (value === Infinity) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new RangeError(`${where} must be a number of ms, 1 - ${MAX_TIMER_MS}, or Infinity (none), not ${String(value)}`);
  }
}

/**
 * A client interceptor giving each call without a deadline the timeout (ms) its method has in `defaults`: by exact
 * path (`files.v1/stat`), by service (`files.v1/*`), or `*`; `Infinity` leaves that method without one. A call
 * whose caller set `timeoutMs` or `deadline` keeps its own.
 */
export function defaultDeadlines(defaults: MethodTable<number>): ClientInterceptor {
  checkMethodTable<number>(defaults, 'defaultDeadlines', checkMs);
  return (next) => {
    const timeoutOf = new MethodMemo((method) => lookupMethod(defaults, method));
    return (call) => {
      if (call.deadline !== undefined) return next(call);
      const timeoutMs = timeoutOf.get(call.method);
      if (timeoutMs === undefined || timeoutMs === Infinity) return next(call);
      return next({ ...call, deadline: Date.now() + timeoutMs });
    };
  };
}

/**
 * A server interceptor capping how long a handler may run (ms) by method, as `defaultDeadlines` keys it. When the
 * caller's deadline is later or absent, the handler's `ctx.deadline` and `ctx.signal` become the cap's, and the call
 * fails DEADLINE_EXCEEDED when it passes (a stream's: at its next response). Calls with an earlier deadline, and
 * methods without an entry, pass untouched.
 */
export function capHandlerTime(limits: MethodTable<number>): ServerInterceptor {
  checkMethodTable<number>(limits, 'capHandlerTime', checkMs);
  return (next) => {
    const maxOf = new MethodMemo((method) => lookupMethod(limits, method));
    return (call) => {
      const maxMs = maxOf.get(call.method);
      if (maxMs === undefined || maxMs === Infinity) return next(call);
      const capAt = Date.now() + maxMs;
      if (call.ctx.deadline !== undefined && call.ctx.deadline <= capAt) return next(call);
      return new HandlerCap(call, capAt, maxMs).run(next);
    };
  };
}

/** One call under a cap: its timer, the handler's own signal, and what it returned, read until the cap or its end. */
class HandlerCap {
  private readonly controller = new AbortController();
  private readonly error: RpcError;
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  private done = false;
  /** Rejects what waits on the handler (its answer, or a read of its responses) when the cap passes. */
  private rejectPending: ((error: RpcError) => void) | undefined;
  private source: ObservedIterator<unknown> | undefined;
  private readonly onCallAbort: () => void;

  constructor(private readonly call: IncomingCall, capAt: number, maxMs: number) {
    this.error = new RpcError(Status.DEADLINE_EXCEEDED, `${call.method.path} ran past the server's limit of ${maxMs} ms`);
    this.onCallAbort = () => this.finish(call.ctx.signal.reason);
    const signal = call.ctx.signal;
    if (signal.aborted) this.controller.abort(signal.reason);
    else signal.addEventListener('abort', this.onCallAbort, { once: true });
    this.timer = setTimeout(() => this.expire(), Math.max(0, capAt - Date.now()));
    this.capped = { ...call, ctx: cappedContext(call.ctx, capAt, this.controller.signal) };
  }

  private readonly capped: IncomingCall;

  run(next: ServerNext): Promise<HandlerResult> {
    let answer: Promise<HandlerResult>;
    try {
      answer = next(this.capped);
    } catch (error) {
      this.finish(undefined);
      return Promise.reject(error);
    }
    return this.race(answer).then(
      (result) => {
        if (result.kind === 'serverStream' || result.kind === 'bidi') return { kind: result.kind, responses: this.watch(result.responses) };
        if (result.kind === 'download') {
          const body = result.body instanceof Uint8Array ? [result.body] : result.body;
          return { kind: result.kind, body: this.watch(body) as AsyncIterable<Uint8Array> };
        }
        this.finish(undefined);
        return result;
      },
      (error: unknown) => {
        this.finish(undefined);
        throw error;
      },
    );
  }

  /** `promise`, or the cap's error if it passes first. */
  private race<T>(promise: Promise<T>): Promise<T> {
    if (this.expired) return Promise.reject(this.error);
    return new Promise<T>((resolve, reject) => {
      this.rejectPending = reject;
      promise.then(
        (value) => {
          this.rejectPending = undefined;
          resolve(value);
        },
        (error: unknown) => {
          this.rejectPending = undefined;
          reject(error);
        },
      );
    });
  }

  /** The handler's responses or body, read until they end (the cap is then lifted) or the cap passes. */
  private watch<T>(source: Iterable<T> | AsyncIterable<T>): AsyncIterableIterator<T> {
    const observed = new ObservedIterator<T>(source, () => this.finish(undefined), () => undefined);
    this.source = observed as ObservedIterator<unknown>;
    return {
      next: () => (this.expired ? Promise.reject(this.error) : this.race(observed.next())),
      return: () => observed.return(),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  private expire(): void {
    this.timer = undefined;
    if (this.done) return;
    this.expired = true;
    this.controller.abort(this.error);
    this.rejectPending?.(this.error);
    // close what the handler returned: its finally blocks run (a generator that ignores its signal stops too)
    this.source?.return().catch(() => undefined);
    this.finish(undefined);
  }

  private finish(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.call.ctx.signal.removeEventListener('abort', this.onCallAbort);
    if (reason !== undefined) this.controller.abort(reason);
  }
}

/** The handler's context with the cap's deadline and signal; everything else read from the call's own. */
function cappedContext(ctx: HandlerContext, deadline: number, signal: AbortSignal): HandlerContext {
  return {
    get method() {
      return ctx.method;
    },
    signal,
    get draining() {
      return ctx.draining;
    },
    deadline,
    get peer() {
      return ctx.peer;
    },
    get metadata() {
      return ctx.metadata;
    },
    get trailer() {
      return ctx.trailer;
    },
    // a handler's CallContext has the session too
    get session() {
      return (ctx as HandlerContext & { session?: unknown }).session;
    },
  } as HandlerContext;
}
