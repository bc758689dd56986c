/**
 * Which handler answers which method: services bound to their handlers (`ServiceImpl`, made by `serve`), indexed by
 * method path, each with its server interceptor chain. Built once per listener and shared by its sessions. Knows
 * nothing of streams or sessions.
 */
import { checkInterceptors } from '../interceptor.js';
import type { MethodDescriptor, ServiceDef } from '../service.js';
import type { AnyHandler } from './context.js';
import { handlerChain, type HandlerChain, type ServerInterceptor } from './interceptor.js';

/** Marks what serve() made: a key users cannot spell, so a hand-made `{ service }` is a type error, and checked at run time. */
const served: unique symbol = Symbol('gridwire.served');

/**
 * A service definition bound to its handlers, ready to pass to `listen` or `connect` as `services`. Made only by
 * `serve(Service, handlers)`: anything else is refused (a type error, and a TypeError at run time).
 */
export interface ServiceImpl {
  readonly service: ServiceDef;
  /** @internal */
  readonly handlers: ReadonlyMap<string, AnyHandler>;
  readonly [served]: true;
}

/** @internal What serve() returns, once it has checked `handlers` against the definition. */
export function servedImpl(service: ServiceDef, handlers: ReadonlyMap<string, AnyHandler>): ServiceImpl {
  return { service, handlers, [served]: true };
}

/**
 * @internal Throws a TypeError for `services` that are not an array of serve() results, or that name a service twice:
 * called by Registry, and where options are first given (before a dial, not at each one).
 */
export function checkServices(services: unknown): void {
  if (services === undefined) return;
  if (!Array.isArray(services)) throw new TypeError(`services must be an array of serve(Service, handlers) results, got ${describeValue(services)}`);
  const names = new Set<string>();
  for (const [i, impl] of services.entries()) {
    if (typeof impl !== 'object' || impl === null || (impl as Partial<ServiceImpl>)[served] !== true) {
      throw new TypeError(`services[${i}] is ${describeValue(impl)}, not a served service: make it with serve(Service, handlers)`);
    }
    const { name } = (impl as ServiceImpl).service;
    if (names.has(name)) throw new TypeError(`service ${name} is registered twice`);
    names.add(name);
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value === 'string' ? JSON.stringify(value) : typeof value;
}

/** One method this side serves. */
export interface Route {
  readonly descriptor: MethodDescriptor;
  readonly handler: AnyHandler;
  /** The server interceptors in front of the handler; undefined when there are none. */
  readonly chain: HandlerChain | undefined;
}

/** Method path -> handler, for every service one side serves. */
export class Registry {
  private readonly routes = new Map<string, Route>();

  constructor(services: readonly ServiceImpl[] = [], interceptors: readonly ServerInterceptor[] = []) {
    checkInterceptors(interceptors, 'serverInterceptors');
    checkServices(services);
    for (const impl of services) {
      for (const [name, descriptor] of impl.service.descriptors) {
        const handler = impl.handlers.get(name)!;
        this.routes.set(descriptor.path, { descriptor, handler, chain: handlerChain(descriptor, handler, interceptors) });
      }
    }
  }

  find(path: string): Route | undefined {
    return this.routes.get(path);
  }
}
