/**
 * One call through a client interceptor chain, from the method function to the Caller and back. The chain is composed
 * once per method, so what belongs to one call travels on the call object under CALL_STATE (a spread copy,
 * `{ ...call, request }`, keeps it), and the chain's end records there what the Caller started. From the chain's
 * result this makes what the caller gets: the response, or the stream or handle to read. A stream or handle the
 * Caller started is handed over as it is; one an interceptor made is wrapped (intercepted-stream.ts), so that what
 * it throws reaches the caller as an RpcError. Knows nothing of sessions or connections.
 */
import { Status } from '../../wire/constants.js';
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
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

export class InterceptedCall {
  /** What the Caller started for this call (response streams, bidi handles), in order. */
  private started: MessageStream<unknown>[] | undefined;

  constructor(private readonly kind: MethodKind) {}

  /** The chain's end started `stream` (a response stream or a bidi handle) for this call. */
  began(stream: MessageStream<unknown>): void {
    (this.started ??= []).push(stream);
  }

  /** unary, clientStream, upload: the response the chain resolved with. */
  response(chain: Promise<CallResult>): Promise<unknown> {
    return chain.then(
      (result) => {
        if (!this.ofKind(result)) throw this.fail(mismatch(result, this.kind));
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
    if (this.isStarted(source)) return source as MessageStream<unknown>;
    const iterator = iteratorOf(source);
    return iterator instanceof RpcError ? failedStream(this.fail(iterator)) : new InterceptedStream(iterator);
  }

  private openedBidi(result: CallResult): BidiCall<unknown, unknown> {
    if (!this.ofKind(result)) return failedBidi(this.fail(mismatch(result, this.kind)));
    const handle = (result as { call: BidiCall<unknown, unknown> }).call;
    if (this.isStarted(handle)) return handle;
    if (handle === null || typeof handle !== 'object' || typeof handle.next !== 'function' || typeof handle.send !== 'function') {
      return failedBidi(this.fail(new RpcError(Status.INTERNAL, 'a client interceptor returned a bidi result whose call is not a bidi handle')));
    }
    return new InterceptedBidi(handle);
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
    const started = this.started;
    this.started = undefined;
    if (started !== undefined) for (const stream of started) cancel(stream);
    return RpcError.from(error);
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
