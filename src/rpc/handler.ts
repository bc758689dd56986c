/**
 * What a handler is: its type for each method kind, the context it is called with (the call's facts plus the session
 * it came in on, to call the caller back), and `serve`, which binds handlers to a service definition. It sits above
 * the session because the context names it; the server call code below knows only HandlerContext.
 */
import type { HandlerContext } from './server/context.js';
import type { ByteStream, MessageStream } from './inbox.js';
import type { AnyHandler } from './server/context.js';
import { servedImpl, type ServiceImpl } from './server/registry.js';
import type { RpcSession } from './rpc-session.js';
import type { ByteSource } from './sender.js';
import type { MethodMap, RequestOf, ResponseInputOf, ServiceDef } from './service.js';

/** What a handler learns about its call, and the session it came in on: `ctx.session.client(Service)` calls back. */
export interface CallContext extends HandlerContext {
  readonly session: RpcSession;
}

/** A value or a promise of it. Not exported: a shorthand (typedoc.json lists it as intentionally so). */
type Awaitable<T> = T | Promise<T>;
/** What a streaming handler returns: typically an async generator (`async function*`), or any (async) iterable. */
export type ResponseSource<T> = Iterable<T> | AsyncIterable<T>;

/** The handler of one method, by kind. */
export type HandlerOf<D extends MethodMap[string]> = {
  unary: (request: RequestOf<D>, ctx: CallContext) => Awaitable<ResponseInputOf<D>>;
  serverStream: (request: RequestOf<D>, ctx: CallContext) => Awaitable<ResponseSource<ResponseInputOf<D>>>;
  clientStream: (requests: MessageStream<RequestOf<D>>, ctx: CallContext) => Awaitable<ResponseInputOf<D>>;
  bidi: (requests: MessageStream<RequestOf<D>>, ctx: CallContext) => Awaitable<ResponseSource<ResponseInputOf<D>>>;
  upload: (request: RequestOf<D>, body: ByteStream, ctx: CallContext) => Awaitable<ResponseInputOf<D>>;
  download: (request: RequestOf<D>, ctx: CallContext) => Awaitable<ByteSource>;
}[D['kind']];

/** Handler functions for every method of a service, typed from its definition. */
export type Handlers<M extends MethodMap> = { [K in keyof M]: HandlerOf<M[K]> };

export function serve<M extends MethodMap>(service: ServiceDef<M>, handlers: Handlers<M>): ServiceImpl {
  const bound = new Map<string, AnyHandler>();
  for (const name of service.descriptors.keys()) {
    const handler = (handlers as Record<string, unknown>)[name];
    if (typeof handler !== 'function') throw new TypeError(`serve(${service.name}): no handler for method '${name}'`);
    bound.set(name, handler as AnyHandler);
  }
  for (const name of Object.keys(handlers)) {
    if (!service.descriptors.has(name)) throw new TypeError(`serve(${service.name}): '${name}' is not a method of the service`);
  }
  return servedImpl(service as unknown as ServiceDef, bound);
}
