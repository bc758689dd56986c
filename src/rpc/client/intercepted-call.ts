/**
 * One call through a client interceptor chain, from the method function to the Caller and back. The chain is composed
 * once per method, so what belongs to one call travels on the call object under CALL_STATE (a spread copy,
 * `{ ...call, request }`, keeps it), and the chain's end tells it that the Caller was reached and what the Caller
 * started. From the chain's result this makes what the caller gets: the response, or the stream or handle to read.
 * A stream or handle the Caller started is handed over as it is; one an interceptor made is wrapped
 * (intercepted-stream.ts), so that what it throws reaches the caller as an RpcError. Knows nothing of sessions.
 *
 * Time and cancellation: when the caller gave a signal or a deadline, the call's `signal` (what interceptors see as
 * `call.signal`, and what the Caller watches) aborts when the caller's signal does, at the deadline, or when the reader
 * stops before the call started; while the chain still awaits, that fails the call at once, even if an interceptor
 * never returns. Without either, none of this is made (no controller, no timer); a stream or bidi call still races its
 * chain, since its reader may stop (`break`) before the chain returned: it is done at once, and a late `next` is refused.
 *
 *   phase    event                                                         next   what happens
 *   waiting  the chain resolves with a result of the call's kind           open   the caller gets it; a response, or
 *                                                                                 with nothing to watch a stream the
 *                                                                                 Caller started: over at once
 *   waiting  the chain rejects, or resolves with another kind              over   the caller gets the RpcError (failed)
 *   waiting  the deadline, the caller's signal, or the reader stops        over   the caller gets DEADLINE_EXCEEDED or
 *                                                                                 CANCELLED now (failed); `signal`
 *                                                                                 aborts; a late result is cancelled
 *   open     the deadline or the caller's signal                           open   `signal` aborts: the real call,
 *                                                                                 watching it, fails and its reader
 *                                                                                 hears why; the watch is disarmed
 *   open     the caller is done with the stream or handle (read to its     over
 *            end, failed, or stopped)
 *   over     the chain's end is reached again                              over   refused: nothing more is sent
 *
 * Entering over: the deadline timer is cleared and the caller's signal unwatched; every stream or handle the Caller
 * started that the caller does not hold is cancelled (on failure all of them: the real call must not run on unread,
 * its handler holding a slot); the caller's source (the requests of a clientStream or bidi call, an upload's body) is
 * discarded (sender.ts) when the call failed or the chain never reached the Caller (an interceptor answered it).
 */
import { Status } from '../../wire/constants.js';
import { deadlineTimer, type DeadlineWatcher } from '../deadline.js';
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
import { discardSource } from '../sender.js';
import type { MethodKind } from '../service.js';
import { abortError, unwatchSignal, watchSignal, type AbortWatcher } from './abort-watch.js';
import { failedBidi, type BidiCall } from './bidi-call.js';
import { DeferredBidi, DeferredStream, type Stoppable } from './deferred.js';
import { InterceptedBidi, InterceptedStream, iteratorOf } from './intercepted-stream.js';
import type { CallResult } from './outgoing-call.js';
import { failedStream } from './stream-call.js';

/** Where an OutgoingCall carries its InterceptedCall (enumerable, so that `{ ...call }` copies it). */
export const CALL_STATE = Symbol('gridwire.interceptedCall');

/** An OutgoingCall as the chain's end reads it: with its state, unless an interceptor built a call of its own. */
export interface CallWithState {
  readonly [CALL_STATE]?: InterceptedCall;
}

type Phase = 'waiting' | 'open' | 'over';

/** Kinds whose caller holds a stream or handle before the call started, and may stop reading it before then. */
const HAS_READER: Readonly<Record<MethodKind, boolean>> = { unary: false, clientStream: false, upload: false, serverStream: true, download: true, bidi: true };

export class InterceptedCall implements AbortWatcher, DeadlineWatcher, Stoppable {
  private phase: Phase = 'waiting';
  /** The chain's end handed the call to the Caller (at least once). */
  private reached = false;
  /** What the Caller started for this call (response streams, bidi handles), in order. */
  private started: MessageStream<unknown>[] | undefined;
  /** Why the call ended for its caller while the chain still awaited (deadline, signal, reader). */
  private stoppedWith: RpcError | undefined;
  /** Only when the caller gave a signal or a deadline: what aborts `signal`, and the timer of the deadline. */
  private readonly controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Rejects what the caller waits on while the chain awaits. */
  private rejectWaiting: ((error: RpcError) => void) | undefined;

  constructor(
    private readonly kind: MethodKind,
    /** What the caller handed over to be consumed: the requests of a clientStream or bidi call, an upload's body. */
    private readonly source: unknown,
    private readonly callerSignal: AbortSignal | undefined,
    private readonly deadline: number | undefined,
  ) {
    if (callerSignal === undefined && deadline === undefined) return;
    this.controller = new AbortController();
    if (callerSignal?.aborted === true) {
      this.stop(abortError(callerSignal));
      return;
    }
    if (callerSignal !== undefined) watchSignal(callerSignal, this);
    if (deadline !== undefined) this.timer = deadlineTimer(deadline - Date.now(), this);
  }

  /** What interceptors see as `call.signal`: aborts with the caller's signal, at the deadline, or when the reader stops. */
  get signal(): AbortSignal | undefined {
    return this.controller?.signal;
  }

  /** The chain's end is about to hand the call to the Caller: the error to refuse it with once the call is over. */
  enter(): RpcError | undefined {
    if (this.phase === 'over') return this.stoppedWith ?? new RpcError(Status.CANCELLED, 'the call is already over for its caller');
    this.reached = true;
    return undefined;
  }

  /** The chain's end started `stream` (a response stream or a bidi handle) for this call. */
  began(stream: MessageStream<unknown>): void {
    (this.started ??= []).push(stream);
  }

  /** unary, clientStream, upload: the response the chain resolved with. */
  response(chain: Promise<CallResult>): Promise<unknown> {
    return this.race(chain).then(
      (result) => {
        if (!this.ofKind(result)) throw this.fail(mismatch(result, this.kind));
        this.over(false);
        return (result as { response: unknown }).response;
      },
      (error: unknown) => {
        throw this.fail(error);
      },
    );
  }

  /** serverStream, download: the stream the caller reads, there at once, failing on its first read if the chain failed. */
  stream(chain: Promise<CallResult>): MessageStream<unknown> {
    return new DeferredStream(
      this.race(chain).then(
        (result) => this.opened(result),
        (error: unknown) => failedStream(this.fail(error)),
      ),
      this,
    );
  }

  /** bidi: the handle the caller sends on and reads from, there at once. */
  bidi(chain: Promise<CallResult>): BidiCall<unknown, unknown> {
    return new DeferredBidi(
      this.race(chain).then(
        (result) => this.openedBidi(result),
        (error: unknown) => failedBidi(this.fail(error)),
      ),
      this,
    );
  }

  /** The caller's signal aborted. */
  onAbort(signal: AbortSignal): void {
    this.stop(abortError(signal));
  }

  /** The caller's deadline passed. */
  onDeadline(): void {
    this.timer = undefined;
    this.stop(deadlinePassed());
  }

  /** The reader stopped (`break`) before the call started (the deferred stream or handle tells). */
  abort(reason: unknown): void {
    this.stop(new RpcError(Status.CANCELLED, 'the caller stopped reading before the call started', { cause: reason }));
  }

  /**
   * The chain's outcome, or the error of a stop that comes first; a result that arrives after that is cancelled. Only
   * a call that can be stopped races: one with a signal or a deadline, or a stream or handle (its reader may stop).
   */
  private race(chain: Promise<CallResult>): Promise<CallResult> {
    if (this.controller === undefined && !HAS_READER[this.kind]) return chain;
    return new Promise((resolve, reject) => {
      if (this.stoppedWith !== undefined) reject(this.stoppedWith);
      else this.rejectWaiting = reject;
      chain.then((result) => (this.stoppedWith === undefined ? resolve(result) : cancelResult(result)), reject);
    });
  }

  private stop(error: RpcError): void {
    if (this.phase === 'over') return;
    this.controller?.abort(error); // interceptors, and a real call watching `signal`, hear it now
    if (this.phase === 'open') {
      // the real call fails with `error` and its reader hears it there; cancelling it here would end it cleanly instead
      this.disarm();
      return;
    }
    this.stoppedWith = error;
    const reject = this.rejectWaiting;
    this.over(true);
    reject?.(error);
  }

  private opened(result: CallResult): MessageStream<unknown> {
    if (this.stoppedWith !== undefined) return this.late(result, failedStream(this.stoppedWith));
    if (!this.ofKind(result)) return failedStream(this.fail(mismatch(result, this.kind)));
    const source = result.kind === 'download' ? result.body : (result as { responses: AsyncIterable<unknown> }).responses;
    if (this.isStarted(source)) return this.handOver(source as MessageStream<unknown>);
    const iterator = iteratorOf(source);
    if (iterator instanceof RpcError) return failedStream(this.fail(iterator));
    this.phase = 'open';
    return new InterceptedStream(iterator, () => this.over(false));
  }

  private openedBidi(result: CallResult): BidiCall<unknown, unknown> {
    if (this.stoppedWith !== undefined) return this.late(result, failedBidi(this.stoppedWith));
    if (!this.ofKind(result)) return failedBidi(this.fail(mismatch(result, this.kind)));
    const handle = (result as { call: BidiCall<unknown, unknown> }).call;
    if (this.isStarted(handle)) return this.handOver(handle);
    if (handle === null || typeof handle !== 'object' || typeof handle.next !== 'function' || typeof handle.send !== 'function') {
      return failedBidi(this.fail(new RpcError(Status.INTERNAL, 'a client interceptor returned a bidi result whose call is not a bidi handle')));
    }
    // an interceptor's own handle may read the caller's requests as long as the caller reads it: they are let go of after
    this.phase = 'open';
    return new InterceptedBidi(handle, () => this.over(false));
  }

  /**
   * A stream or handle the Caller started goes to the caller as it is, unless the call's signal must stay tied to the
   * caller's until the caller is done with it (then it is wrapped only to learn when that is).
   */
  private handOver<S extends MessageStream<unknown>>(stream: S): S {
    if (this.controller === undefined) {
      this.over(false, stream);
      return stream;
    }
    this.phase = 'open';
    const over = (): void => this.over(false);
    const wrapped = this.kind === 'bidi' ? new InterceptedBidi(stream as unknown as BidiCall<unknown, unknown>, over) : new InterceptedStream(stream, over);
    return wrapped as unknown as S; // a bidi handle stays one, a stream a stream
  }

  /** A result that came after the call was stopped: cancelled, and the caller gets `failed`. */
  private late<F>(result: CallResult, failed: F): F {
    cancelResult(result);
    return failed;
  }

  /** A result of this call's kind (by `kind`, not by which fields it has). */
  private ofKind(result: unknown): result is CallResult {
    return result !== null && typeof result === 'object' && (result as { kind?: unknown }).kind === this.kind;
  }

  private isStarted(source: unknown): boolean {
    return this.started !== undefined && this.started.includes(source as MessageStream<unknown>);
  }

  /**
   * The caller gets `error` (as an RpcError) instead of what the Caller started: every stream or handle it started is
   * cancelled, or the real call would run on unread (its handler holding a slot, a graceful close waiting it out).
   */
  private fail(error: unknown): RpcError {
    this.over(true);
    return RpcError.from(error);
  }

  /** The call is over for its caller; `kept` is the stream the caller now holds and stops itself. */
  private over(failed: boolean, kept?: MessageStream<unknown>): void {
    if (this.phase === 'over') return;
    this.phase = 'over';
    this.rejectWaiting = undefined;
    this.disarm();
    const started = this.started;
    this.started = undefined;
    if (started !== undefined) for (const stream of started) if (stream !== kept) cancel(stream);
    if (failed || !this.reached) discardSource(this.source);
  }

  /** Nothing more to watch: the timer cleared, the caller's signal let go of. */
  private disarm(): void {
    // the call may end by its deadline a moment before our own timer fires (the peer's timer, started from the same
    // deadline, went first): `signal` still aborts at the deadline, as it promises
    if (this.timer !== undefined && this.deadline !== undefined && Date.now() >= this.deadline) {
      this.controller?.abort(deadlinePassed());
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.controller !== undefined && this.callerSignal !== undefined) unwatchSignal(this.callerSignal, this);
  }
}

function deadlinePassed(): RpcError {
  return new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the call finished');
}

/** Stops a stream or handle nobody will read; how that goes concerns no one. */
function cancel(stream: MessageStream<unknown>): void {
  try {
    stream.return().catch(() => undefined);
  } catch {
    // a stream that cannot even be stopped has nothing more to say to anyone
  }
}

/** The stream or handle in a result nobody will take (the call was already stopped), cancelled. */
function cancelResult(result: unknown): void {
  if (result === null || typeof result !== 'object') return;
  const r = result as { responses?: unknown; body?: unknown; call?: unknown };
  const stream = (r.responses ?? r.body ?? r.call) as Partial<MessageStream<unknown>> | undefined;
  if (stream !== null && typeof stream === 'object' && typeof stream.return === 'function') cancel(stream as MessageStream<unknown>);
}

function mismatch(result: unknown, expected: MethodKind): RpcError {
  const kind = (result as { kind?: MethodKind } | null)?.kind;
  return new RpcError(Status.INTERNAL, `a client interceptor returned ${kind === undefined ? 'no result' : `a ${kind} result`} for a ${expected} call`);
}
