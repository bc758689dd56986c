/**
 * Server interceptors: what they see of an incoming call (its method, its context, what the caller sent) and get back
 * from the handler, and the chain in front of one handler, composed once per method when services are registered.
 * Methods of a side configured without interceptors have no chain: their handler is called directly.
 *
 * `next(call)` resolves once the handler has returned: with its response for unary, clientStream and upload; with
 * the iterable of responses (serverStream, bidi) or the byte source (download) it returned, before they are sent.
 */
import { Status } from '../../wire/constants.js';
import type { ByteStream, MessageStream } from '../inbox.js';
import { compose, methodInfo, type MethodInfo } from '../interceptor.js';
import { RpcError } from '../rpc-error.js';
import type { ByteSource } from '../sender.js';
import type { MethodDescriptor, MethodKind } from '../service.js';
import type { AnyHandler, HandlerContext } from './context.js';

interface IncomingCallBase {
  readonly method: MethodInfo;
  /** The call's context: method path, peer, request metadata, deadline, signal, trailer (the handler's ctx). */
  readonly ctx: HandlerContext;
}

/** A unary, serverStream or download call: the request message, decoded and validated. */
export interface IncomingMessageCall extends IncomingCallBase {
  readonly kind: 'unary' | 'serverStream' | 'download';
  readonly request: unknown;
}

/** A clientStream or bidi call: the stream of request messages, as the handler reads it. */
export interface IncomingStreamCall extends IncomingCallBase {
  readonly kind: 'clientStream' | 'bidi';
  readonly requests: MessageStream<unknown>;
}

/** An upload: the request message, then the body as the handler reads it. */
export interface IncomingUploadCall extends IncomingCallBase {
  readonly kind: 'upload';
  readonly request: unknown;
  readonly body: ByteStream;
}

/** An incoming call as a server interceptor sees it; pass it on, or a changed copy (`next({ ...call, request })`). */
export type IncomingCall = IncomingMessageCall | IncomingStreamCall | IncomingUploadCall;

/** What a handler returned, by kind; an interceptor may return a replacement of the same kind. */
export type HandlerResult =
  | { readonly kind: 'unary'; readonly response: unknown }
  | { readonly kind: 'clientStream'; readonly response: unknown }
  | { readonly kind: 'upload'; readonly response: unknown }
  | { readonly kind: 'serverStream'; readonly responses: Iterable<unknown> | AsyncIterable<unknown> }
  | { readonly kind: 'bidi'; readonly responses: Iterable<unknown> | AsyncIterable<unknown> }
  | { readonly kind: 'download'; readonly body: ByteSource };

/** One step of a server chain: the rest of the chain, or the handler itself at its end. */
export type ServerNext = (call: IncomingCall) => Promise<HandlerResult>;

/**
 * Wraps every incoming call of the services it is configured with (`serverInterceptors`): it may read the call and
 * its context, refuse it by throwing before `next` (an RpcError travels to the caller with its status; anything else
 * as UNKNOWN with its message only), and read, wrap or replace what the handler returned.
 */
export type ServerInterceptor = (next: ServerNext) => ServerNext;

/** The chain in front of one handler, or undefined when there are no interceptors (the handler is called directly). */
export function handlerChain(descriptor: MethodDescriptor, handler: AnyHandler, interceptors: readonly ServerInterceptor[]): HandlerChain | undefined {
  if (interceptors.length === 0) return undefined;
  const method = methodInfo(descriptor);
  return { method, run: compose(interceptors, endOfChain(method.kind, handler)) };
}

export interface HandlerChain {
  readonly method: MethodInfo;
  readonly run: ServerNext;
}

/**
 * Runs `chain` for a call whose handler would get `args` (its request or requests, the body, then ctx), and resolves
 * with what the handler (or an interceptor in its place) returned, as the handler would have returned it.
 */
export function runChain(chain: HandlerChain, args: readonly unknown[]): Promise<unknown> {
  const { method } = chain;
  const kind = method.kind;
  const ctx = args[args.length - 1] as HandlerContext;
  let call: IncomingCall;
  if (kind === 'clientStream' || kind === 'bidi') call = { kind, method, ctx, requests: args[0] as MessageStream<unknown> };
  else if (kind === 'upload') call = { kind, method, ctx, request: args[0], body: args[1] as ByteStream };
  else call = { kind, method, ctx, request: args[0] };
  let result: Promise<HandlerResult>;
  try {
    result = chain.run(call);
  } catch (error) {
    return Promise.reject(error);
  }
  return result.then((value) => unwrap(kind, value));
}

/** The end of the chain: the handler, called with the call as the interceptors left it. */
function endOfChain(kind: MethodKind, handler: AnyHandler): ServerNext {
  return (call) => {
    const c = call as IncomingCall & { request: unknown; requests: unknown; body: unknown };
    let out: unknown;
    try {
      if (kind === 'clientStream' || kind === 'bidi') out = handler(c.requests, c.ctx);
      else if (kind === 'upload') out = handler(c.request, c.body, c.ctx);
      else out = handler(c.request, c.ctx);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(out).then((value) => wrap(kind, value));
  };
}

function wrap(kind: MethodKind, value: unknown): HandlerResult {
  if (kind === 'serverStream' || kind === 'bidi') return { kind, responses: value as Iterable<unknown> };
  if (kind === 'download') return { kind, body: value as ByteSource };
  return { kind, response: value };
}

/** The handler's value from a result of the call's kind: told by `kind`, not by which fields it has. */
function unwrap(kind: MethodKind, result: HandlerResult): unknown {
  const got = (result as { kind?: unknown } | null)?.kind;
  if (got === kind) {
    const r = result as Partial<Record<'response' | 'responses' | 'body', unknown>>;
    return kind === 'serverStream' || kind === 'bidi' ? r.responses : kind === 'download' ? r.body : r.response;
  }
  throw new RpcError(Status.INTERNAL, `a server interceptor returned ${typeof got === 'string' ? `a ${got} result` : 'no result'} for a ${kind} call`);
}
