/**
 * Which handler answers which method: services bound to their handlers (`ServiceImpl`, made by `serve`), indexed by
 * method path. Built once per listener and shared by its sessions. Knows nothing of streams or sessions.
 */
import type { MethodDescriptor, ServiceDef } from '../service.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- handlers are typed at serve(); here they are opaque
export type AnyHandler = (...args: any[]) => unknown;

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
}

/** Method path -> handler, for every service one side serves. */
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
