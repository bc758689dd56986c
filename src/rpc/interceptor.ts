/**
 * What the client and the server interceptor chains share: the description of a method an interceptor sees, and how a
 * list of interceptors becomes one function. Connect-es style: an interceptor takes the next step and returns a step,
 * `(next) => (call) => next(call)`; the first in the list is the outermost, so it sees the call first and the result
 * last. A chain is composed once per method (when a client is first built, when services are registered), never per
 * call: an interceptor keeps per-call state inside the function it returns.
 */
import type { MethodDescriptor, MethodKind } from './service.js';

/** The method of a call, as interceptors see it. */
export interface MethodInfo {
  /** The service's name, e.g. `files.v1`. */
  readonly service: string;
  /** The method's name within its service, e.g. `stat`. */
  readonly name: string;
  /** The canonical full name, `service/method`, exactly as it travels and as the server routes it. */
  readonly path: string;
  readonly kind: MethodKind;
}

/** The MethodInfo of a defined method: made once per method and chain, frozen (interceptors share it). */
export function methodInfo(descriptor: MethodDescriptor): MethodInfo {
  const { name, path } = descriptor;
  return Object.freeze({ service: path.slice(0, path.length - name.length - 1), name, path, kind: descriptor.def.kind });
}

/** `interceptors` around `last`, the first interceptor outermost. */
export function compose<Step>(interceptors: ReadonlyArray<(next: Step) => Step>, last: Step): Step {
  let next = last;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  return next;
}

/** Rejects an option that is not a list of functions, naming it, before any call depends on it. */
export function checkInterceptors(interceptors: unknown, option: string): void {
  if (interceptors === undefined) return;
  if (!Array.isArray(interceptors) || !interceptors.every((i) => typeof i === 'function')) {
    throw new TypeError(`${option} must be an array of interceptor functions, (next) => (call) => next(call)`);
  }
}
