/**
 * Telling a promise-like answer from a plain one, for the places that accept either from application code (an
 * admission check, `auth.verify`, `authorize`, a handler): a leaf any layer may import, like log.ts and timers.ts.
 */

/**
 * True for anything with a callable `then` (a Promise, or another library's thenable). Reading `then` may run a getter
 * that throws: callers that get the value from application code call this inside their try.
 */
export function isThenable<T = unknown>(value: unknown): value is PromiseLike<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
