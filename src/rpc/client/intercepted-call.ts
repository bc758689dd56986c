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
        if (result !== null && typeof result === 'object' && 'response' in result) return result.response;
        throw mismatch(result, 'unary, clientStream or upload');
      },
      (error: unknown) => {
        throw RpcError.from(error);
      },
    );
  }

  /** serverStream, download: the stream the caller reads, there at once, failing on its first read if the chain failed. */
  stream(chain: Promise<CallResult>): MessageStream<unknown> {
    return new DeferredStream(
      chain.then(
        (result) => this.opened(result),
        (error: unknown) => failedStream(RpcError.from(error)),
      ),
    );
  }

  /** bidi: the handle the caller sends on and reads from, there at once. */
  bidi(chain: Promise<CallResult>): BidiCall<unknown, unknown> {
    return new DeferredBidi(
      chain.then(
        (result) => this.openedBidi(result),
        (error: unknown) => failedBidi(RpcError.from(error)),
      ),
    );
  }

  private opened(result: CallResult): MessageStream<unknown> {
    const field = this.kind === 'download' ? 'body' : 'responses';
    if (result === null || typeof result !== 'object' || !(field in result)) return failedStream(mismatch(result, this.kind));
    const source = (result as unknown as Record<typeof field, AsyncIterable<unknown>>)[field];
    if (this.isStarted(source)) return source as MessageStream<unknown>;
    const iterator = iteratorOf(source);
    return iterator instanceof RpcError ? failedStream(iterator) : new InterceptedStream(iterator);
  }

  private openedBidi(result: CallResult): BidiCall<unknown, unknown> {
    if (result === null || typeof result !== 'object' || !('call' in result)) return failedBidi(mismatch(result, 'bidi'));
    const handle = result.call;
    if (this.isStarted(handle)) return handle;
    if (handle === null || typeof handle !== 'object' || typeof handle.next !== 'function' || typeof handle.send !== 'function') {
      return failedBidi(new RpcError(Status.INTERNAL, 'a client interceptor returned a bidi result whose call is not a bidi handle'));
    }
    return new InterceptedBidi(handle);
  }

  private isStarted(source: unknown): boolean {
    return this.started !== undefined && this.started.includes(source as MessageStream<unknown>);
  }
}

function mismatch(result: unknown, expected: string): RpcError {
  const kind = (result as { kind?: MethodKind } | null)?.kind;
  return new RpcError(Status.INTERNAL, `a client interceptor returned ${kind === undefined ? 'no result' : `a ${kind} result`} for a ${expected} call`);
}
