/**
 * A per-method setting keyed the way the provided interceptors take it: an exact method path (`files.v1/stat`), a
 * whole service (`files.v1/*`), or everything (`*`); the most specific key wins. The lookup is made once per method
 * (a chain is composed per method, so its MethodInfo is the same object on every call) and remembered in the
 * interceptor's closure: a call pays one identity check, no string is built per call.
 */
import type { MethodInfo } from '../interceptor.js';

/** `{ 'files.v1/stat': v, 'files.v1/*': v, '*': v }`: the value for a method, by exact path, by service, or for all. */
export type MethodTable<T> = Readonly<Record<string, T>>;

/** The table's value for `method`: its exact path, else its service's `service/*`, else `*`, else undefined. */
export function lookupMethod<T>(table: MethodTable<T>, method: MethodInfo): T | undefined {
  if (Object.hasOwn(table, method.path)) return table[method.path];
  const service = `${method.service}/*`;
  if (Object.hasOwn(table, service)) return table[service];
  return Object.hasOwn(table, '*') ? table['*'] : undefined;
}

/**
 * Checks every entry of a table where the interceptor is made (not at the first call): a key must be `*`, `service/*`
 * or `service/method`; `check` throws for a bad value, naming the option and the key.
 */
export function checkMethodTable<T>(table: unknown, option: string, check: (value: unknown, where: string) => void): asserts table is MethodTable<T> {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    throw new TypeError(`${option} must be an object keyed by 'service/method', 'service/*' or '*'`);
  }
  for (const [key, value] of Object.entries(table)) {
    const slash = key.lastIndexOf('/');
    if (key !== '*' && (slash <= 0 || slash === key.length - 1)) {
      throw new TypeError(`${option}: the key ${JSON.stringify(key)} is not 'service/method', 'service/*' or '*'`);
    }
    check(value, `${option}[${JSON.stringify(key)}]`);
  }
}

/** One method's value, found on its first call and kept (a chain serves one method; a new MethodInfo looks again). */
export class MethodMemo<T> {
  private method: MethodInfo | undefined;
  private value: T | undefined;

  constructor(private readonly find: (method: MethodInfo) => T | undefined) {}

  get(method: MethodInfo): T | undefined {
    if (method !== this.method) {
      this.value = this.find(method);
      this.method = method;
    }
    return this.value;
  }
}
