/**
 * What a bidi method function was given: `chat(options?)` (the caller sends with `send` and `end`) or
 * `chat(requests, options?)` (an iterable or async iterable drives the sending side, connect-es style). Told apart by
 * Symbol.iterator / Symbol.asyncIterator; anything else a JavaScript caller could pass (a request object where the
 * options belong, a string, a promise) throws a TypeError here, at the call, rather than starting a call that waits
 * for requests nobody will send.
 */
import type { CallOptions } from './call-options.js';

/** Every CallOptions key (the compiler keeps this in step with the interface). */
const CALL_OPTION_KEYS: Readonly<Record<keyof CallOptions, true>> = {
  signal: true,
  timeoutMs: true,
  deadline: true,
  metadata: true,
  onTrailer: true,
  waitForReady: true,
  progressTimeoutMs: true,
};

export interface BidiArguments {
  readonly requests: Iterable<unknown> | AsyncIterable<unknown> | undefined;
  readonly options: CallOptions | undefined;
}

/** `chat(options?)` or `chat(requests, options?)`, checked; throws a TypeError that says what was wrong. */
export function bidiArguments(path: string, first: unknown, second: unknown): BidiArguments {
  if (isRequestSource(first)) return { requests: first, options: callOptions(path, second, 'the second argument') };
  if (first instanceof Uint8Array || typeof first === 'string') {
    throw new TypeError(`${path}(requests, options?): requests must be an iterable or async iterable of requests, not one ${typeof first === 'string' ? 'string' : 'Uint8Array'}: pass [request]`);
  }
  if (second !== undefined) {
    throw new TypeError(`${path}(requests, options?): the first argument is not an iterable or async iterable of requests (pass [request] to send one)`);
  }
  return { requests: undefined, options: callOptions(path, first, 'the argument') };
}

/** An array, a generator, a Node Readable, anything `for await` can read (strings and byte arrays are not). */
function isRequestSource(value: unknown): value is Iterable<unknown> | AsyncIterable<unknown> {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return false;
  const v = value as Partial<Record<typeof Symbol.iterator | typeof Symbol.asyncIterator, unknown>>;
  return typeof v[Symbol.asyncIterator] === 'function' || typeof v[Symbol.iterator] === 'function';
}

/** Undefined, null, or a plain object of CallOptions keys only: a request object in the options' place is refused. */
function callOptions(path: string, value: unknown, which: string): CallOptions | undefined {
  if (value === undefined || value === null) return undefined;
  const proto: unknown = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`${path}: ${which} must be call options (a plain object) or an iterable of requests, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(CALL_OPTION_KEYS, key)) {
      throw new TypeError(
        `${path}: ${JSON.stringify(key)} is not a call option (${Object.keys(CALL_OPTION_KEYS).join(', ')}); ` +
          'to send requests pass an iterable of them first, chat([request], options), or use call.send(request)',
      );
    }
  }
  return value as CallOptions;
}

function describe(value: unknown): string {
  if (typeof value !== 'object') return typeof value;
  return `an instance of ${(value as object).constructor?.name ?? 'an unknown class'}`;
}
