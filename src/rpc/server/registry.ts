/**
 * Which handler answers which method: services bound to their handlers (`ServiceImpl`, made by `serve`), indexed by
 * method path, each with its server interceptor chain. Built once per listener and shared by its sessions. Knows
 * nothing of streams or sessions.
 */
import { checkInterceptors } from '../interceptor.js';
import type { MethodDescriptor, ServiceDef } from '../service.js';
import type { AnyHandler } from './context.js';
import { handlerChain, type HandlerChain, type ServerInterceptor } from './interceptor.js';

/** A service definition bound to its handlers, ready to pass to `listen` or `connect` as `services`. */
export interface ServiceImpl {
  readonly service: ServiceDef;
  /** @internal */
  readonly handlers: ReadonlyMap<string, AnyHandler>;
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
    const names = new Set<string>();
    for (const impl of services) {
      if (names.has(impl.service.name)) throw new TypeError(`service ${impl.service.name} is registered twice`);
      names.add(impl.service.name);
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
