/**
 * The client interceptor chain: the method function that runs a chain of interceptors in front of a Caller, and the
 * chain's end that hands the call to it (what interceptors see and return: outgoing-call.ts). Only clients built with
 * interceptors come here; without any, a method function
 * hands its arguments straight to the Caller (typed-client.ts) and pays for none of this.
 *
 * Every kind goes through the same chain. What `next(call)` resolves with depends on the kind: the response of a
 * unary, clientStream or upload call once it has arrived; the response stream of a serverStream call, the byte stream
 * of a download, the handle of a bidi call as soon as the call has started (read or wrap them to see what flows).
 */
import { Status } from '../../wire/constants.js';
import { deadlineOf } from '../deadline.js';
import type { ByteStream, MessageStream } from '../inbox.js';
import { compose, methodInfo, type MethodInfo } from '../interceptor.js';
import { RpcError } from '../rpc-error.js';
import { discardSource, type ByteSource } from '../sender.js';
import type { MethodDescriptor, MethodKind } from '../service.js';
import { bidiArguments } from './bidi-arguments.js';
import { failedBidi, type BidiCall } from './bidi-call.js';
import type { CallOptions } from './call-options.js';
import type { Caller } from './caller.js';
import { DeferredBidi, DeferredStream } from './deferred.js';
import type { CallResult, ClientInterceptor, ClientNext, OutgoingCall } from './outgoing-call.js';
import { failedStream } from './stream-call.js';

/** The client function of one method behind a chain of interceptors. */
export function interceptedMethod(caller: Caller, descriptor: MethodDescriptor, interceptors: readonly ClientInterceptor[]): unknown {
  const method = methodInfo(descriptor);
  const chain = compose(interceptors, endOfChain(caller, descriptor));
  const kind = method.kind;
  switch (kind) {
    case 'unary':
    case 'clientStream':
      return (request: unknown, options?: CallOptions) => run(chain, outgoing(method, options, request, undefined)).then(responseOf, failWith);
    case 'upload':
      return (request: unknown, body: ByteSource, options?: CallOptions) =>
        run(chain, outgoing(method, options, request, body)).then(responseOf, (error: unknown) => failUpload(body, error));
    case 'serverStream':
      return (request: unknown, options?: CallOptions) => new DeferredStream(run(chain, outgoing(method, options, request, undefined)).then(responsesOf, failedStreamOf));
    case 'download':
      return (request: unknown, options?: CallOptions) => new DeferredStream(run(chain, outgoing(method, options, request, undefined)).then(bodyOf, failedStreamOf));
    case 'bidi':
      return (first?: unknown, second?: unknown) => {
        const { requests, options } = bidiArguments(method.path, first, second);
        return new DeferredBidi(run(chain, outgoing(method, options, requests, undefined)).then(bidiOf, failedBidiOf));
      };
  }
}

/**
 * The call object: one shape for every kind. For a clientStream call the caller's first argument is its requests
 * (for a bidi call its requests, if it gave any), for an upload the second is the body.
 */
function outgoing(method: MethodInfo, options: CallOptions | undefined, first: unknown, body: ByteSource | undefined): OutgoingCall {
  const kind = method.kind;
  const streams = kind === 'clientStream' || kind === 'bidi';
  return {
    kind,
    method,
    metadata: { ...options?.metadata },
    signal: options?.signal,
    deadline: deadlineOf(options),
    options,
    request: streams ? undefined : first,
    requests: streams ? first : undefined,
    body,
  } as OutgoingCall;
}

/** Runs the chain; an interceptor that throws instead of rejecting fails the call the same way. */
function run(chain: ClientNext, call: OutgoingCall): Promise<CallResult> {
  try {
    return chain(call);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The end of the chain: the call as the interceptors left it, handed to the Caller. */
function endOfChain(caller: Caller, descriptor: MethodDescriptor): ClientNext {
  const kind = descriptor.def.kind;
  return (call) => {
    const options: CallOptions = { ...call.options, metadata: call.metadata, signal: call.signal, deadline: call.deadline, timeoutMs: undefined };
    const c = call as OutgoingCall & { request: unknown; requests: Iterable<unknown> | AsyncIterable<unknown>; body: ByteSource };
    switch (kind) {
      case 'unary':
        return caller.unary(descriptor, c.request, options).then((response) => ({ kind, response }));
      case 'clientStream':
        return caller.clientStream(descriptor, c.requests, options).then((response) => ({ kind, response }));
      case 'upload':
        return caller.upload(descriptor, c.request, c.body, options).then((response) => ({ kind, response }));
      case 'serverStream':
        return Promise.resolve({ kind, responses: caller.serverStream(descriptor, c.request, options) });
      case 'download':
        return Promise.resolve({ kind, body: caller.download(descriptor, c.request, options) });
      case 'bidi':
        return Promise.resolve({ kind, call: caller.bidi(descriptor, c.requests, options) });
    }
  };
}

function responseOf(result: CallResult): unknown {
  if (result !== null && typeof result === 'object' && 'response' in result) return result.response;
  throw mismatch(result, 'unary, clientStream or upload');
}

function responsesOf(result: CallResult): MessageStream<unknown> {
  return result !== null && typeof result === 'object' && 'responses' in result ? asMessageStream(result.responses) : failedStream(mismatch(result, 'serverStream'));
}

function bodyOf(result: CallResult): ByteStream {
  return result !== null && typeof result === 'object' && 'body' in result ? asMessageStream(result.body) : failedStream(mismatch(result, 'download'));
}

/** The stream an interceptor returned, as the caller reads it: an iterator with `return` (an async generator is one). */
function asMessageStream<T>(source: AsyncIterable<T>): MessageStream<T> {
  const s = source as Partial<MessageStream<T>>;
  if (typeof s.next === 'function' && typeof s.return === 'function' && typeof s[Symbol.asyncIterator] === 'function') return source as MessageStream<T>;
  if (source === null || typeof source !== 'object' || typeof source[Symbol.asyncIterator] !== 'function') {
    return failedStream(new RpcError(Status.INTERNAL, 'a client interceptor returned a response stream that is not an async iterable'));
  }
  const iterator = source[Symbol.asyncIterator]();
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next: () => iterator.next() as Promise<IteratorResult<T, undefined>>,
    return: async () => {
      await iterator.return?.();
      return { done: true, value: undefined };
    },
  };
}

function bidiOf(result: CallResult): BidiCall<unknown, unknown> {
  return result !== null && typeof result === 'object' && 'call' in result ? result.call : failedBidi(mismatch(result, 'bidi'));
}

function mismatch(result: unknown, expected: string): RpcError {
  const kind = (result as { kind?: MethodKind } | null)?.kind;
  return new RpcError(Status.INTERNAL, `a client interceptor returned ${kind === undefined ? 'no result' : `a ${kind} result`} for a ${expected} call`);
}

/** What an interceptor threw, as the RpcError every failed call rejects with. */
function failWith(error: unknown): never {
  throw RpcError.from(error);
}

/**
 * A failed upload lets go of its body: an interceptor may have refused it before it was ever pumped, and an open file
 * must not wait for GC to close (one the call already pumped is closed already; closing it again does nothing).
 */
function failUpload(body: ByteSource, error: unknown): never {
  discardSource(body);
  throw RpcError.from(error);
}

function failedStreamOf<T>(error: unknown): MessageStream<T> {
  return failedStream(RpcError.from(error));
}

function failedBidiOf(error: unknown): BidiCall<unknown, unknown> {
  return failedBidi(RpcError.from(error));
}
