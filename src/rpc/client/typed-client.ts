/**
 * The one typed-client builder: turns a service definition into an object of method functions over a Caller, built
 * once per service and reused by every caller. Sessions, channels and mesh peers all make their clients here, so
 * client interceptors reach all three alike. Without interceptors a method function hands its arguments straight to
 * the Caller: no call object, no closure, no promise of its own.
 */
import type { ByteStream, MessageStream } from '../inbox.js';
import { checkInterceptors } from '../interceptor.js';
import type { ByteSource } from '../sender.js';
import type { MethodDescriptor, MethodMap, RequestInputOf, ResponseOf, ServiceDef } from '../service.js';
import { bidiArguments } from './bidi-arguments.js';
import type { BidiCall } from './bidi-call.js';
import type { CallOptions } from './call-options.js';
import type { Caller } from './caller.js';
import { interceptedMethod } from './interceptor.js';
import type { ClientInterceptor } from './outgoing-call.js';

/** The client function of one method, by kind. */
export type ClientMethodOf<D extends MethodMap[string]> = {
  unary: (request: RequestInputOf<D>, options?: CallOptions) => Promise<ResponseOf<D>>;
  serverStream: (request: RequestInputOf<D>, options?: CallOptions) => MessageStream<ResponseOf<D>>;
  clientStream: (requests: Iterable<RequestInputOf<D>> | AsyncIterable<RequestInputOf<D>>, options?: CallOptions) => Promise<ResponseOf<D>>;
  bidi: {
    /** Send with `call.send(request)`, finish with `call.end()`, read the responses with `for await`. */
    (options?: CallOptions): BidiCall<RequestInputOf<D>, ResponseOf<D>>;
    /** `requests` (an array, a generator, a Readable...) are sent as they come; the caller's side ends when they end. */
    (requests: Iterable<RequestInputOf<D>> | AsyncIterable<RequestInputOf<D>>, options?: CallOptions): BidiCall<RequestInputOf<D>, ResponseOf<D>>;
  };
  upload: (request: RequestInputOf<D>, body: ByteSource, options?: CallOptions) => Promise<ResponseOf<D>>;
  download: (request: RequestInputOf<D>, options?: CallOptions) => ByteStream;
}[D['kind']];

/** A typed client: one function per method. */
export type Client<M extends MethodMap> = { [K in keyof M]: ClientMethodOf<M[K]> };

/** The typed clients of one Caller (a session, a channel, a mesh peer): one frozen object per service. */
export class TypedClients {
  private readonly clients = new Map<ServiceDef, unknown>();
  private readonly interceptors: readonly ClientInterceptor[];

  constructor(
    private readonly caller: Caller,
    interceptors: readonly ClientInterceptor[] = [],
  ) {
    checkInterceptors(interceptors, 'clientInterceptors');
    this.interceptors = [...interceptors]; // the caller's array may change later; the clients built here may not
  }

  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    let client = this.clients.get(service) as Client<M> | undefined;
    if (client === undefined) {
      const methods: Record<string, unknown> = {};
      for (const [name, descriptor] of service.descriptors) {
        methods[name] = this.interceptors.length === 0 ? methodOf(this.caller, descriptor) : interceptedMethod(this.caller, descriptor, this.interceptors);
      }
      client = Object.freeze(methods) as Client<M>;
      this.clients.set(service, client);
    }
    return client;
  }
}

/** The client function of one method: the caller's arguments handed straight to the Caller, nothing in between. */
function methodOf(caller: Caller, descriptor: MethodDescriptor): unknown {
  switch (descriptor.def.kind) {
    case 'unary':
      return (request: unknown, options?: CallOptions) => caller.unary(descriptor, request, options);
    case 'serverStream':
      return (request: unknown, options?: CallOptions) => caller.serverStream(descriptor, request, options);
    case 'clientStream':
      return (requests: Iterable<unknown> | AsyncIterable<unknown>, options?: CallOptions) => caller.clientStream(descriptor, requests, options);
    case 'bidi':
      return (first?: unknown, second?: unknown) => {
        const { requests, options } = bidiArguments(descriptor.path, first, second);
        return caller.bidi(descriptor, requests, options);
      };
    case 'upload':
      return (request: unknown, body: ByteSource, options?: CallOptions) => caller.upload(descriptor, request, body, options);
    case 'download':
      return (request: unknown, options?: CallOptions) => caller.download(descriptor, request, options);
  }
}
