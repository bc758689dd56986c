/**
 * Typed clients over connections that come and go (a channel, a mesh peer): each call asks a Router for a session
 * when it starts. Fail-fast calls (the default) get UNAVAILABLE at once while the link is down, and wait only for a
 * dial already in progress; `waitForReady` calls wait for a connection until their deadline or signal.
 *
 * Transparent retry (gRFC A6): a call that provably never reached a handler (never written, refused by the peer, or
 * above the last stream id of its GOAWAY: UNAVAILABLE with `retrySafe`) is retried once, on whatever session is then
 * current. Only calls whose whole request is one value are retried (unary, serverStream, download, and those only
 * before a response arrived); a call that consumed a source of requests or bytes cannot be replayed.
 */
import { Status } from '../wire/constants.js';
import type { CallOptions } from '../rpc/client/call-options.js';
import { callUnary } from '../rpc/client/unary-call.js';
import { budgetOf, timestampOf } from '../rpc/deadline.js';
import { callBidi, failedBidi, type BidiCall } from '../rpc/client/bidi-call.js';
import { callClientStream, callServerStream, callUpload, failedStream } from '../rpc/client/stream-call.js';
import type { MessageStream } from '../rpc/inbox.js';
import { RpcError } from '../rpc/rpc-error.js';
import { ClientCache, type Client, type RpcSession } from '../rpc/rpc-session.js';
import { discardSource, type ByteSource } from '../rpc/sender.js';
import type { MethodDescriptor, MethodKind, MethodMap, ServiceDef } from '../rpc/service.js';

export interface Router {
  /** The session a call of `kind` should start on now, if one is ready; one other than `avoid` if there is one. */
  pick(kind: MethodKind, avoid?: RpcSession): RpcSession | undefined;
  /** A session for `kind` once one is ready; `failFast` waits only for a dial in progress. */
  wait(kind: MethodKind, failFast: boolean, signal: AbortSignal | undefined, deadline: number | undefined): Promise<RpcSession>;
  /** True when a fail-fast call should wait: a dial for `kind`'s link is in progress. */
  dialing(kind: MethodKind): boolean;
  /** The error a fail-fast call gets when no session is ready. */
  unavailable(kind: MethodKind): RpcError;
}

/** The typed clients of one router (a channel, a mesh peer), built once per service. */
export class RoutedClients {
  private readonly cache = new ClientCache();

  constructor(private readonly router: Router) {}

  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.cache.client(service, (descriptor) => routedMethod(this.router, descriptor));
  }
}

function routedMethod(router: Router, descriptor: MethodDescriptor): unknown {
  switch (descriptor.def.kind) {
    case 'unary':
      return (request: unknown, options?: CallOptions) => routedUnary(router, descriptor, request, fixDeadline(options));
    case 'serverStream':
    case 'download':
      return (request: unknown, options?: CallOptions) => {
        const fixed = fixDeadline(options);
        return new RoutedStream((stop) => {
          const withStop = stoppable(fixed, stop);
          return startOn(router, descriptor.def.kind, withStop, (s) => callServerStream(s.core, descriptor, request, withStop));
        });
      };
    case 'clientStream':
      return async (requests: Iterable<unknown> | AsyncIterable<unknown>, options?: CallOptions) => {
        const fixed = fixDeadline(options);
        return callClientStream((await acquire(router, 'clientStream', fixed)).core, descriptor, requests, fixed);
      };
    case 'upload':
      return async (request: unknown, body: ByteSource, options?: CallOptions) => {
        const fixed = fixDeadline(options);
        let session: RpcSession;
        try {
          session = await acquire(router, 'upload', fixed);
        } catch (error) {
          discardSource(body);
          throw error;
        }
        return callUpload(session.core, descriptor, request, body, fixed);
      };
    case 'bidi':
      return (options?: CallOptions) => {
        const fixed = fixDeadline(options);
        const now = router.pick('bidi');
        if (now !== undefined) return callBidi(now.core, descriptor, fixed);
        const stop = new AbortController();
        const withStop = stoppable(fixed, stop.signal);
        const started = acquire(router, 'bidi', withStop).then((session) => callBidi(session.core, descriptor, withStop), (error: RpcError) => failedBidi(error));
        return new DeferredBidi(started, stop);
      };
  }
}

/** The deadline spans waiting and every attempt: turn a relative budget into an absolute time once, at the start. */
function fixDeadline(options: CallOptions | undefined): CallOptions | undefined {
  if (options === undefined) return undefined;
  const budget = budgetOf(options);
  if (budget === undefined) return options;
  return { ...options, timeoutMs: undefined, deadline: Date.now() + budget };
}

/** The caller's options with `stop` joined to their signal: a reader that gives up while the call waits stops it. */
function stoppable(options: CallOptions | undefined, stop: AbortSignal): CallOptions {
  const signal = options?.signal === undefined ? stop : AbortSignal.any([options.signal, stop]);
  return { ...options, signal };
}

function deadlineOf(options: CallOptions | undefined): number | undefined {
  const d = options?.deadline;
  return d === undefined ? undefined : timestampOf(d);
}

async function acquire(router: Router, kind: MethodKind, options: CallOptions | undefined, avoid?: RpcSession): Promise<RpcSession> {
  const session = router.pick(kind, avoid);
  if (session !== undefined) return session;
  const waitForReady = options?.waitForReady === true;
  if (!waitForReady && !router.dialing(kind)) throw router.unavailable(kind);
  return router.wait(kind, !waitForReady, options?.signal, deadlineOf(options));
}

function transparentlyRetryable(error: unknown): boolean {
  return error instanceof RpcError && error.retrySafe && error.code === Status.UNAVAILABLE;
}

async function routedUnary(router: Router, descriptor: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown> {
  const first = await acquire(router, 'unary', options);
  try {
    return await callUnary(first.core, descriptor, request, options);
  } catch (error) {
    if (!transparentlyRetryable(error)) throw error;
  }
  // another connection of a pool, if there is one: the first may have refused for being busy
  return callUnary((await acquire(router, 'unary', options, first)).core, descriptor, request, options);
}

function startOn<T>(
  router: Router,
  kind: MethodKind,
  options: CallOptions | undefined,
  start: (session: RpcSession) => MessageStream<T>,
): MessageStream<T> | Promise<MessageStream<T>> {
  const session = router.pick(kind);
  if (session !== undefined) return start(session);
  return acquire(router, kind, options).then(start, (error: RpcError) => failedStream<T>(error));
}

/** A response stream whose call may still be waiting for a connection, and is retried once if it was never processed. */
class RoutedStream<T> implements MessageStream<T> {
  private inner: MessageStream<T> | undefined;
  private starting: Promise<void> | undefined;
  private received = false;
  private retried = false;
  private stopped = false;

  /** Aborted when the reader stops: a call still waiting for a connection is then never sent. */
  private readonly stop = new AbortController();

  constructor(private readonly start: (stop: AbortSignal) => MessageStream<T> | Promise<MessageStream<T>>) {
    this.begin();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    if (this.inner === undefined) await this.starting;
    try {
      const result = await this.inner!.next();
      this.received = true;
      return result;
    } catch (error) {
      if (this.received || this.retried || this.stopped || !transparentlyRetryable(error)) throw error;
      this.retried = true;
      this.begin();
      return this.next();
    }
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.stopped = true;
    // still waiting for a connection: the wait ends (CANCELLED) and the call is never sent; the reader is done now
    if (this.inner === undefined) {
      this.stop.abort(new DOMException('the reader stopped', 'AbortError'));
      return { done: true, value: undefined };
    }
    return this.inner.return();
  }

  private begin(): void {
    this.inner = undefined;
    const started = this.start(this.stop.signal);
    if (!(started instanceof Promise)) {
      this.inner = started;
      return;
    }
    this.starting = started.then((inner) => {
      this.inner = inner;
      if (this.stopped) void inner.return();
    });
  }
}

/** A bidi call waiting for a connection: sends and reads wait for it, in order; `end()` follows the sends before it. */
class DeferredBidi implements BidiCall<unknown, unknown> {
  private inner: BidiCall<unknown, unknown> | undefined;

  constructor(
    private readonly started: Promise<BidiCall<unknown, unknown>>,
    private readonly stop: AbortController,
  ) {
    void started.then((inner) => (this.inner = inner));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async send(request: unknown): Promise<void> {
    return (this.inner ?? (await this.started)).send(request);
  }

  end(): void {
    if (this.inner !== undefined) this.inner.end();
    else void this.started.then((inner) => inner.end());
  }

  async next(): Promise<IteratorResult<unknown, undefined>> {
    return (this.inner ?? (await this.started)).next();
  }

  async return(): Promise<IteratorResult<unknown, undefined>> {
    if (this.inner === undefined) this.stop.abort(new DOMException('the reader stopped', 'AbortError'));
    return (this.inner ?? (await this.started)).return();
  }
}
