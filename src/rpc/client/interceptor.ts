/**
 * The client interceptor chain: the method function that runs a chain of interceptors in front of a Caller, and the
 * chain's end that hands the call to it (what interceptors see and return: outgoing-call.ts; what one call keeps
 * along the chain: intercepted-call.ts). Only clients built with interceptors come here; without any, a method
 * function hands its arguments straight to the Caller (typed-client.ts) and pays for none of this.
 *
 * Every kind goes through the same chain. What `next(call)` resolves with depends on the kind: the response of a
 * unary, clientStream or upload call once it has arrived; the response stream of a serverStream call, the byte stream
 * of a download, the handle of a bidi call as soon as the call has started (read or wrap them to see what flows).
 */
import { deadlineOf } from '../deadline.js';
import { compose, methodInfo, type MethodInfo } from '../interceptor.js';
import type { ByteSource } from '../sender.js';
import type { MethodDescriptor } from '../service.js';
import { bidiArguments } from './bidi-arguments.js';
import type { CallOptions } from './call-options.js';
import type { Caller } from './caller.js';
import { CALL_STATE, InterceptedCall, type CallWithState } from './intercepted-call.js';
import type { CallResult, ClientInterceptor, ClientNext, OutgoingCall } from './outgoing-call.js';

/** The client function of one method behind a chain of interceptors. */
export function interceptedMethod(caller: Caller, descriptor: MethodDescriptor, interceptors: readonly ClientInterceptor[]): unknown {
  const method = methodInfo(descriptor);
  const chain = compose(interceptors, endOfChain(caller, descriptor));
  const kind = method.kind;
  switch (kind) {
    case 'unary':
    case 'clientStream': // the first argument: the request, or the iterable of requests
      return (first: unknown, options?: CallOptions) => {
        const call = outgoing(method, options, first, undefined);
        return call[CALL_STATE].response(run(chain, call));
      };
    case 'upload':
      return (request: unknown, body: ByteSource, options?: CallOptions) => {
        const call = outgoing(method, options, request, body);
        return call[CALL_STATE].response(run(chain, call));
      };
    case 'serverStream':
    case 'download':
      return (request: unknown, options?: CallOptions) => {
        const call = outgoing(method, options, request, undefined);
        return call[CALL_STATE].stream(run(chain, call));
      };
    case 'bidi':
      return (first?: unknown, second?: unknown) => {
        const { requests, options } = bidiArguments(method.path, first, second);
        const call = outgoing(method, options, requests, undefined);
        return call[CALL_STATE].bidi(run(chain, call));
      };
  }
}

/**
 * The call object: one shape for every kind, carrying its state for the chain's end. For a clientStream call the
 * caller's first argument is its requests (for a bidi call its requests, if it gave any), for an upload the second is
 * the body; those are what the state lets go of if they are never sent. Its signal is the state's: the caller's,
 * also aborted at the deadline (none when the caller gave neither).
 */
function outgoing(method: MethodInfo, options: CallOptions | undefined, first: unknown, body: ByteSource | undefined): OutgoingCall & Required<CallWithState> {
  const kind = method.kind;
  const streams = kind === 'clientStream' || kind === 'bidi';
  const deadline = deadlineOf(options);
  const state = new InterceptedCall(kind, streams ? first : body, options?.signal, deadline);
  return {
    kind,
    method,
    metadata: { ...options?.metadata },
    signal: state.signal,
    deadline,
    options,
    request: streams ? undefined : first,
    requests: streams ? first : undefined,
    body,
    [CALL_STATE]: state,
  } as OutgoingCall & Required<CallWithState>;
}

/** Runs the chain; an interceptor that throws instead of rejecting fails the call the same way. */
function run(chain: ClientNext, call: OutgoingCall): Promise<CallResult> {
  try {
    return chain(call);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * The end of the chain: the call as the interceptors left it, handed to the Caller. The call's state (when the call
 * still carries it) learns that the Caller was reached and what it started for a streaming kind, and refuses a call
 * that is already over for its caller.
 */
function endOfChain(caller: Caller, descriptor: MethodDescriptor): ClientNext {
  const kind = descriptor.def.kind;
  return (call) => {
    const state = (call as CallWithState)[CALL_STATE];
    const refused = state?.enter();
    if (refused !== undefined) return Promise.reject(refused);
    const options: CallOptions = { ...call.options, metadata: call.metadata, signal: call.signal, deadline: call.deadline, timeoutMs: undefined };
    const c = call as OutgoingCall & { request: unknown; requests: Iterable<unknown> | AsyncIterable<unknown>; body: ByteSource };
    switch (kind) {
      case 'unary':
        return caller.unary(descriptor, c.request, options).then((response) => ({ kind, response }));
      case 'clientStream':
        return caller.clientStream(descriptor, c.requests, options).then((response) => ({ kind, response }));
      case 'upload':
        return caller.upload(descriptor, c.request, c.body, options).then((response) => ({ kind, response }));
      case 'serverStream': {
        const responses = caller.serverStream(descriptor, c.request, options);
        state?.began(responses);
        return Promise.resolve({ kind, responses });
      }
      case 'download': {
        const body = caller.download(descriptor, c.request, options);
        state?.began(body);
        return Promise.resolve({ kind, body });
      }
      case 'bidi': {
        const handle = caller.bidi(descriptor, c.requests, options);
        state?.began(handle);
        return Promise.resolve({ kind, call: handle });
      }
    }
  };
}
