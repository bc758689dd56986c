/**
 * Calls over connections that come and go (a channel, a mesh peer): a Caller that asks a Router for a session as each
 * call starts, and hands the call to that session's own Caller. The typed clients and interceptors above it are the
 * ones every session has; only where a call runs, and whether it runs twice, is decided here.
 *
 * Fail-fast calls (the default) get UNAVAILABLE at once while the link is down, and wait only for a dial already in
 * progress that nothing has failed before (a link's first dial; after a loss or a failed dial, none: gRFC A62's
 * sticky TRANSIENT_FAILURE); `waitForReady` calls wait for a connection until their deadline or signal. The deadline is fixed once, at
 * the start, so waiting and every attempt share one budget.
 *
 * Transparent retry (gRFC A6): a call that provably never reached a handler (never written, refused by the peer, or
 * above the last stream id of its GOAWAY: UNAVAILABLE with `retrySafe`) is retried once, on whatever session is then
 * current. Only calls whose whole request is one value are retried (unary, serverStream, download, and those only
 * before a response arrived); a call that consumed a source of requests or bytes cannot be replayed.
 */
import { Status } from '../wire/constants.js';
import type { BidiCall } from '../rpc/client/bidi-call.js';
import { failedBidi } from '../rpc/client/bidi-call.js';
import type { CallOptions } from '../rpc/client/call-options.js';
import type { Caller } from '../rpc/client/caller.js';
import { DeferredBidi, DeferredStream } from '../rpc/client/deferred.js';
import { failedStream } from '../rpc/client/stream-call.js';
import { deadlineOf, withFixedDeadline } from '../rpc/deadline.js';
import type { ByteStream, MessageStream } from '../rpc/inbox.js';
import { RpcError } from '../rpc/rpc-error.js';
import type { RpcSession } from '../rpc/rpc-session.js';
import { discardSource, type ByteSource } from '../rpc/sender.js';
import type { MethodDescriptor, MethodKind } from '../rpc/service.js';

export interface Router {
  /** The session a call of `kind` should start on now, if one is ready; one other than `avoid` if there is one. */
  pick(kind: MethodKind, avoid?: RpcSession): RpcSession | undefined;
  /** A session for `kind` once one is ready; `failFast` waits only for a dial in progress. */
  wait(kind: MethodKind, failFast: boolean, signal: AbortSignal | undefined, deadline: number | undefined): Promise<RpcSession>;
  /** True when a fail-fast call should wait: a dial for `kind`'s link is in progress, and nothing failed since its last connection. */
  dialing(kind: MethodKind): boolean;
  /** The error a fail-fast call gets when no session is ready. */
  unavailable(kind: MethodKind): RpcError;
}

export class RoutedCaller implements Caller {
  constructor(private readonly router: Router) {}

  unary(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown> {
    const fixed = withFixedDeadline(options);
    const session = this.router.pick('unary');
    if (session !== undefined) return this.unaryOn(session, method, request, fixed);
    return this.acquire('unary', fixed).then((ready) => this.unaryOn(ready, method, request, fixed));
  }

  serverStream(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): MessageStream<unknown> {
    return this.retryingStream('serverStream', method, request, options);
  }

  download(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): ByteStream {
    return this.retryingStream('download', method, request, options) as ByteStream;
  }

  clientStream(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown>, options: CallOptions | undefined): Promise<unknown> {
    const fixed = withFixedDeadline(options);
    return this.acquire('clientStream', fixed).then(
      (session) => session.caller.clientStream(method, requests, fixed),
      (error: unknown) => {
        discardSource(requests); // the caller handed them over: a Readable or a generator must not wait for GC to close
        throw error;
      },
    );
  }

  upload(method: MethodDescriptor, request: unknown, body: ByteSource, options: CallOptions | undefined): Promise<unknown> {
    const fixed = withFixedDeadline(options);
    return this.acquire('upload', fixed).then(
      (session) => session.caller.upload(method, request, body, fixed),
      (error: unknown) => {
        discardSource(body); // the caller handed the body over: an open file must not wait for GC to close
        throw error;
      },
    );
  }

  bidi(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown> | undefined, options: CallOptions | undefined): BidiCall<unknown, unknown> {
    const fixed = withFixedDeadline(options);
    const now = this.router.pick('bidi');
    if (now !== undefined) return now.caller.bidi(method, requests, fixed);
    const stop = new AbortController();
    const withStop = stoppable(fixed, stop.signal);
    const started = this.acquire('bidi', withStop).then(
      (session) => session.caller.bidi(method, requests, withStop),
      (error: RpcError) => {
        if (requests !== undefined) discardSource(requests);
        return failedBidi(error);
      },
    );
    return new DeferredBidi(started, stop);
  }

  /** A unary call on `session`, retried once on another (or the same, if alone) when it never reached a handler. */
  private unaryOn(session: RpcSession, method: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown> {
    return session.caller.unary(method, request, options).catch((error: unknown) => {
      if (!transparentlyRetryable(error)) throw error;
      // another connection of a pool, if there is one: the first may have refused for being busy
      return this.acquire('unary', options, session).then((next) => next.caller.unary(method, request, options));
    });
  }

  /** A serverStream or download: one request, then what the peer sends, started again once if retry-safe. */
  private retryingStream(kind: 'serverStream' | 'download', method: MethodDescriptor, request: unknown, options: CallOptions | undefined): MessageStream<unknown> {
    const fixed = withFixedDeadline(options);
    return new RetryingStream((stop) => {
      const withStop = stoppable(fixed, stop);
      return this.startStream(kind, withStop, (session) => session.caller[kind](method, request, withStop));
    });
  }

  private startStream<T>(kind: MethodKind, options: CallOptions, start: (session: RpcSession) => MessageStream<T>): MessageStream<T> | Promise<MessageStream<T>> {
    const session = this.router.pick(kind);
    if (session !== undefined) return start(session);
    return this.acquire(kind, options).then(start, (error: RpcError) => failedStream<T>(error));
  }

  /** A ready session for `kind`: now, after a dial in progress (fail-fast), or whenever one is (`waitForReady`). */
  private acquire(kind: MethodKind, options: CallOptions | undefined, avoid?: RpcSession): Promise<RpcSession> {
    const session = this.router.pick(kind, avoid);
    if (session !== undefined) return Promise.resolve(session);
    const waitForReady = options?.waitForReady === true;
    if (!waitForReady && !this.router.dialing(kind)) return Promise.reject(this.router.unavailable(kind));
    return this.router.wait(kind, !waitForReady, options?.signal, deadlineOf(options));
  }
}

function transparentlyRetryable(error: unknown): boolean {
  return error instanceof RpcError && error.retrySafe && error.code === Status.UNAVAILABLE;
}

/** The caller's options with `stop` joined to their signal: a reader that gives up while the call waits stops it. */
function stoppable(options: CallOptions | undefined, stop: AbortSignal): CallOptions {
  const signal = options?.signal === undefined ? stop : AbortSignal.any([options.signal, stop]);
  return { ...options, signal };
}

/** A response stream that starts its call again, once, if the first attempt failed before any response and provably never reached a handler. */
class RetryingStream<T> implements MessageStream<T> {
  private current: MessageStream<T>;
  private received = false;
  private retried = false;
  private stopped = false;
  /** Aborted when the reader stops: a call still waiting for a connection is then never sent. */
  private readonly stop = new AbortController();

  constructor(private readonly start: (stop: AbortSignal) => MessageStream<T> | Promise<MessageStream<T>>) {
    this.current = this.begin();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    try {
      const result = await this.current.next();
      this.received = true;
      return result;
    } catch (error) {
      if (this.received || this.retried || this.stopped || !transparentlyRetryable(error)) throw error;
      this.retried = true;
      this.current = this.begin();
      return this.next();
    }
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.stopped = true;
    return this.current.return();
  }

  private begin(): MessageStream<T> {
    const started = this.start(this.stop.signal);
    return started instanceof Promise ? new DeferredStream(started, this.stop) : started;
  }
}
