/**
 * What a client interceptor sees of an outgoing call and gets back from it, by kind: the public shapes of the client
 * chain. The chain that runs them is interceptor.ts; the state one call keeps along it is intercepted-call.ts.
 */
import type { Metadata } from '../../wire/metadata.js';
import type { MethodInfo } from '../interceptor.js';
import type { ByteSource } from '../sender.js';
import type { BidiCall } from './bidi-call.js';
import type { CallOptions } from './call-options.js';

interface OutgoingCallBase {
  readonly method: MethodInfo;
  /** Request metadata, sent when the chain reaches its end: add or change entries before `next`. A copy of the caller's. */
  readonly metadata: Metadata;
  /**
   * The call's signal, when the caller gave a signal or a deadline: it aborts when the caller's signal does (with an
   * RpcError CANCELLED reason, or the signal's own RpcError), at the deadline (DEADLINE_EXCEEDED), or when the reader
   * stops before the call started. Aborting it cancels the call. Undefined when the caller gave neither.
   */
  readonly signal: AbortSignal | undefined;
  /** The call's deadline as a `Date.now()` timestamp (from `timeoutMs` and `deadline`), or undefined. */
  readonly deadline: number | undefined;
  /** The caller's options as given (`onTrailer`, `waitForReady`, `progressTimeoutMs`...); the fields above win. */
  readonly options: CallOptions | undefined;
}

/** A unary, serverStream or download call: one request message. */
export interface OutgoingMessageCall extends OutgoingCallBase {
  readonly kind: 'unary' | 'serverStream' | 'download';
  readonly request: unknown;
}

/** A clientStream call: the caller's source of request messages. */
export interface OutgoingStreamCall extends OutgoingCallBase {
  readonly kind: 'clientStream';
  readonly requests: Iterable<unknown> | AsyncIterable<unknown>;
}

/**
 * A bidi call: requests are sent on the handle it returns, or, when the caller gave an iterable of them
 * (`chat(requests)`), come from `requests` (replace it with a wrapping generator to see or change them).
 */
export interface OutgoingBidiCall extends OutgoingCallBase {
  readonly kind: 'bidi';
  readonly requests?: Iterable<unknown> | AsyncIterable<unknown>;
}

/** An upload: one request message, then the bulk body. */
export interface OutgoingUploadCall extends OutgoingCallBase {
  readonly kind: 'upload';
  readonly request: unknown;
  readonly body: ByteSource;
}

/**
 * An outgoing call as a client interceptor sees it. Pass it on as it is, or a changed copy
 * (`next({ ...call, request })`, `next({ ...call, deadline })`): the end of the chain sends what it is given.
 */
export type OutgoingCall = OutgoingMessageCall | OutgoingStreamCall | OutgoingBidiCall | OutgoingUploadCall;

/**
 * What an outgoing call gave back, by kind; an interceptor may return a replacement of the same kind. A replacement
 * stream may be any async iterable (an async generator over the original, say): the caller's `break` reaches the
 * original through it and cancels the call.
 */
export type CallResult =
  | { readonly kind: 'unary'; readonly response: unknown }
  | { readonly kind: 'clientStream'; readonly response: unknown }
  | { readonly kind: 'upload'; readonly response: unknown }
  | { readonly kind: 'serverStream'; readonly responses: AsyncIterable<unknown> }
  | { readonly kind: 'download'; readonly body: AsyncIterable<Uint8Array> }
  | { readonly kind: 'bidi'; readonly call: BidiCall<unknown, unknown> };

/** One step of a client chain: the rest of the chain, or the call itself at its end. */
export type ClientNext = (call: OutgoingCall) => Promise<CallResult>;

/**
 * Wraps every outgoing call of the clients it is configured on (`clientInterceptors`): it may read or change the
 * call, throw (an RpcError fails the call with its status; anything else becomes UNKNOWN), and read, wrap or replace
 * the result.
 */
export type ClientInterceptor = (next: ClientNext) => ClientNext;
