/**
 * A session with services: wraps the core Session, routes the peer's streams to this side's handlers, and makes
 * typed clients for the peer's services. Either side of a connection can do both.
 */
import { Status } from '../wire/constants.js';
import { Session, type IncomingStream, type Role, type SessionPeer } from '../session/session.js';
import type { SessionOptions } from '../session/options.js';
import type { Transport } from '../transport/transport.js';
import { callUnary, type CallOptions } from './client-call.js';
import { callBidi, callClientStream, callDownload, callServerStream, callUpload, type BidiCall } from './client-stream-call.js';
import type { CallContext } from './context.js';
import type { ByteStream, MessageStream } from './inbox.js';
import type { ByteSource } from './sender.js';
import { ServerCall, type AnyHandler } from './server-call.js';
import type { MethodDescriptor, MethodMap, RequestInputOf, RequestOf, ResponseInputOf, ResponseOf, ServiceDef } from './service.js';

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

/** The client function of one method, by kind. */
export type ClientMethodOf<D extends MethodMap[string]> = {
  unary: (request: RequestInputOf<D>, options?: CallOptions) => Promise<ResponseOf<D>>;
  serverStream: (request: RequestInputOf<D>, options?: CallOptions) => MessageStream<ResponseOf<D>>;
  clientStream: (requests: Iterable<RequestInputOf<D>> | AsyncIterable<RequestInputOf<D>>, options?: CallOptions) => Promise<ResponseOf<D>>;
  bidi: (options?: CallOptions) => BidiCall<RequestInputOf<D>, ResponseOf<D>>;
  upload: (request: RequestInputOf<D>, body: ByteSource, options?: CallOptions) => Promise<ResponseOf<D>>;
  download: (request: RequestInputOf<D>, options?: CallOptions) => ByteStream;
}[D['kind']];

/** Handler functions for every method of a service, typed from its definition. */
export type Handlers<M extends MethodMap> = { [K in keyof M]: HandlerOf<M[K]> };

/** A typed client: one function per method. */
export type Client<M extends MethodMap> = { [K in keyof M]: ClientMethodOf<M[K]> };

/** A service definition bound to its handlers, ready to pass to `listen` or `connect` as `services`. */
export interface ServiceImpl {
  readonly service: ServiceDef;
  /** @internal */
  readonly handlers: ReadonlyMap<string, AnyHandler>;
}

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
  return { service: service as unknown as ServiceDef, handlers: bound };
}

interface Route {
  descriptor: MethodDescriptor;
  handler: AnyHandler;
}

/** Method path -> handler, for every service one side serves. Built once and shared by a server's sessions. */
export class Registry {
  private readonly routes = new Map<string, Route>();

  constructor(services: readonly ServiceImpl[] = []) {
    const names = new Set<string>();
    for (const impl of services) {
      if (names.has(impl.service.name)) throw new TypeError(`service ${impl.service.name} is registered twice`);
      names.add(impl.service.name);
      for (const [name, descriptor] of impl.service.descriptors) {
        this.routes.set(descriptor.path, { descriptor, handler: impl.handlers.get(name)! });
      }
    }
  }

  find(path: string): Route | undefined {
    return this.routes.get(path);
  }
}

export interface RpcSessionOptions extends SessionOptions {
  /** Services this side offers to the peer. */
  services?: readonly ServiceImpl[];
  /**
   * Decides from the peer's handshake (node name, label, address) whether it may use this connection, before any of
   * its calls is read: return a reason to refuse it (sent to the peer in the GOAWAY), undefined to admit it.
   */
  admit?: (peer: SessionPeer) => string | undefined;
}

/** Typed clients built once per service: one object of method functions, frozen, reused by every caller. */
export class ClientCache {
  private readonly clients = new Map<ServiceDef, unknown>();

  client<M extends MethodMap>(service: ServiceDef<M>, methodOf: (descriptor: MethodDescriptor) => unknown): Client<M> {
    let client = this.clients.get(service) as Client<M> | undefined;
    if (client === undefined) {
      const methods: Record<string, unknown> = {};
      for (const [name, descriptor] of service.descriptors) methods[name] = methodOf(descriptor);
      client = Object.freeze(methods) as Client<M>;
      this.clients.set(service, client);
    }
    return client;
  }
}

export class RpcSession {
  readonly core: Session;
  private readonly registry: Registry;
  private readonly clients = new ClientCache();

  constructor(transport: Transport, role: Role, options: RpcSessionOptions & { registry?: Registry } = {}) {
    this.registry = options.registry ?? new Registry(options.services);
    this.core = new Session(transport, role, { onStream: this.onStream, admit: options.admit }, options);
  }

  /** Resolves when the handshake is done. */
  get ready(): Promise<void> {
    return this.core.ready;
  }

  /** Resolves when the connection is closed, with the error that closed it (undefined when clean). */
  get closed(): Promise<Error | undefined> {
    return this.core.closed;
  }

  /** Resolves when the session stops taking new calls (closing, GOAWAY from the peer, failure); calls in flight may go on. */
  get goingAway(): Promise<void> {
    return this.core.goingAway;
  }

  /** True while new calls may start on this session. */
  get acceptsCalls(): boolean {
    return this.core.acceptsStreams;
  }

  get peer(): SessionPeer {
    return this.core.peer;
  }

  get rttMs(): number | undefined {
    return this.core.rttMs;
  }

  /** A typed client for a service the peer serves. */
  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.clients.client(service, (descriptor) => this.clientMethod(descriptor));
  }

  private clientMethod(descriptor: MethodDescriptor): unknown {
    switch (descriptor.def.kind) {
      case 'unary':
        return (request: unknown, options?: CallOptions) => callUnary(this, descriptor, request, options);
      case 'serverStream':
        return (request: unknown, options?: CallOptions) => callServerStream(this, descriptor, request, options);
      case 'clientStream':
        return (requests: Iterable<unknown> | AsyncIterable<unknown>, options?: CallOptions) =>
          callClientStream(this, descriptor, requests, options);
      case 'bidi':
        return (options?: CallOptions) => callBidi(this, descriptor, options);
      case 'upload':
        return (request: unknown, body: ByteSource, options?: CallOptions) => callUpload(this, descriptor, request, body, options);
      case 'download':
        return (request: unknown, options?: CallOptions) => callDownload(this, descriptor, request, options);
    }
  }

  /** Measures the round-trip time in ms. */
  ping(): Promise<number> {
    return this.core.ping();
  }

  /**
   * Graceful close: no new calls; calls in flight finish (up to graceMs, default 10 s); then the connection closes.
   * `reason` travels to the peer in the GOAWAY.
   */
  close(options?: { graceMs?: number; reason?: string }): Promise<void> {
    return this.core.close(options);
  }

  /** Closes at once; calls in flight fail with UNAVAILABLE. */
  destroy(error?: Error): void {
    this.core.destroy(error);
  }

  private readonly onStream = (incoming: IncomingStream): void => {
    const { stream, method } = incoming;
    const route = this.registry.find(method);
    if (route === undefined) {
      stream.reset(Status.UNIMPLEMENTED, `method ${JSON.stringify(method.slice(0, 300))} is not implemented by this peer`);
      this.core.release(stream);
      return;
    }
    const call = new ServerCall(this, stream, route.descriptor, route.handler, incoming.metadata, incoming.deadlineMs);
    stream.events = call;
    call.start();
  };
}

/** A session over any Transport (an in-memory pair, a custom duplex). Await `session.ready` before calling. */
export function createSession(transport: Transport, role: Role, options: RpcSessionOptions = {}): RpcSession {
  return new RpcSession(transport, role, options);
}
