/**
 * One call through a client interceptor chain, from the method function to the Caller and back. The chain is composed
 * once per method, so what belongs to one call travels on the call object under CALL_STATE (a spread copy,
 * `{ ...call, request }`, keeps it), and the chain's end records there what the Caller started. From the chain's
 * result this makes what the caller gets: the response, or the stream or handle to read. A stream or handle the
 * Caller started is handed over as it is; one an interceptor made is wrapped (intercepted-stream.ts), so that what
 * it throws reaches the caller as an RpcError. Once the call is over for the caller, what the Caller started and
 * nobody reads is cancelled, and what the caller handed over (the requests of a clientStream or bidi call, the body
 * of an upload) is let go of unless the Caller took it. Knows nothing of sessions or connections.
 *
 *   phase    event                                                         next   what happens
 *   waiting  the chain resolves with a result of the call's kind           open   the caller gets it (the response:
 *                                                                                 over at once; a stream or handle
 *                                                                                 the Caller started, as it is: over)
 *   waiting  the chain rejects, or resolves with another kind              over   the caller gets the RpcError (failed)
 *   open     the caller is done with an interceptor's stream or handle     over
 *            (read to its end, failed, or stopped)
 *   over     the chain's end is reached again                              over   refused: nothing more is sent
 *
 * Entering over: every stream or handle the Caller started and the caller does not hold is cancelled (on failure all
 * of them: the real call must not run on unread, its handler holding a slot); the caller's source is discarded
 * (sender.ts) when the call failed or the chain never reached the Caller (an interceptor answered it itself).
 */
import { Status } from '../../wire/constants.js';
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
import { discardSource } from '../sender.js';
import type { MethodKind } from '../service.js';
import { failedBidi, type BidiCall } from './bidi-call.js';
import { DeferredBidi, DeferredStream } from './deferred.js';
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

export class InterceptedCall {
  private phase: Phase = 'waiting';
  /** The chain's end handed the call to the Caller (at least once). */
  private reached = false;
  /** What the Caller started for this call (response streams, bidi handles), in order. */
  private started: MessageStream<unknown>[] | undefined;

  constructor(
    private readonly kind: MethodKind,
    /** What the caller handed over to be consumed: the requests of a clientStream or bidi call, an upload's body. */
    private readonly source: unknown,
  ) {}

  /** The chain's end is about to hand the call to the Caller: the error to refuse it with once the call is over. */
  enter(): RpcError | undefined {
    if (this.phase === 'over') return new RpcError(Status.CANCELLED, 'the call is already over for its caller');
    this.reached = true;
    return undefined;
  }

  /** The chain's end started `stream` (a response stream or a bidi handle) for this call. */
  began(stream: MessageStream<unknown>): void {
    (this.started ??= []).push(stream);
  }

  /** unary, clientStream, upload: the response the chain resolved with. */
  response(chain: Promise<CallResult>): Promise<unknown> {
    return chain.then(
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
      chain.then(
        (result) => this.opened(result),
        (error: unknown) => failedStream(this.fail(error)),
      ),
    );
  }

  /** bidi: the handle the caller sends on and reads from, there at once. */
  bidi(chain: Promise<CallResult>): BidiCall<unknown, unknown> {
    return new DeferredBidi(
      chain.then(
        (result) => this.openedBidi(result),
        (error: unknown) => failedBidi(this.fail(error)),
      ),
    );
  }

  private opened(result: CallResult): MessageStream<unknown> {
    if (!this.ofKind(result)) return failedStream(this.fail(mismatch(result, this.kind)));
    const source = result.kind === 'download' ? result.body : (result as { responses: AsyncIterable<unknown> }).responses;
    if (this.isStarted(source)) return this.handOver(source as MessageStream<unknown>);
    const iterator = iteratorOf(source);
    if (iterator instanceof RpcError) return failedStream(this.fail(iterator));
    this.phase = 'open';
    return new InterceptedStream(iterator, () => this.over(false));
  }

  private openedBidi(result: CallResult): BidiCall<unknown, unknown> {
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

  /** A stream or handle the Caller started goes to the caller as it is: the call needs nothing more from this state. */
  private handOver<S extends MessageStream<unknown>>(stream: S): S {
    this.over(false, stream);
    return stream;
  }

  /** A result of this call's kind (by `kind`, not by which fields it has). */
  private ofKind(result: unknown): result is CallResult {
    return result !== null && typeof result === 'object' && (result as { kind?: unknown }).kind === this.kind;
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
    const started = this.started;
    this.started = undefined;
    if (started !== undefined) for (const stream of started) if (stream !== kept) cancel(stream);
    if (failed || !this.reached) discardSource(this.source);
  }

  private isStarted(source: unknown): boolean {
    return this.started !== undefined && this.started.includes(source as MessageStream<unknown>);
  }
}

/** Stops a stream or handle nobody will read; how that goes concerns no one. */
function cancel(stream: MessageStream<unknown>): void {
  try {
    stream.return().catch(() => undefined);
  } catch {
    // a stream that cannot even be stopped has nothing more to say to anyone
  }
}

function mismatch(result: unknown, expected: MethodKind): RpcError {
  const kind = (result as { kind?: MethodKind } | null)?.kind;
  return new RpcError(Status.INTERNAL, `a client interceptor returned ${kind === undefined ? 'no result' : `a ${kind} result`} for a ${expected} call`);
}
