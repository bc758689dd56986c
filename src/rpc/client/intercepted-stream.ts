/**
 * The response stream or bidi handle a caller reads when a client interceptor returned one of its own (a wrapper
 * over the real call's, or a stand-in): whatever it throws reaches the caller as an RpcError (`RpcError.from`), and
 * the call hears once when the caller is done with it. Knows nothing of the chain that produced it.
 */
import { Status } from '../../wire/constants.js';
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
import type { BidiCall } from './bidi-call.js';

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * The iterator behind an interceptor's async iterable, or the RpcError the caller gets instead: INTERNAL for what is
 * not an async iterable, what its `[Symbol.asyncIterator]()` threw (as RpcError.from makes it) otherwise.
 */
export function iteratorOf<T>(source: AsyncIterable<T>): AsyncIterator<T> | RpcError {
  if (source === null || typeof source !== 'object' || typeof source[Symbol.asyncIterator] !== 'function') {
    return new RpcError(Status.INTERNAL, 'a client interceptor returned a response stream that is not an async iterable');
  }
  let iterator: AsyncIterator<T>;
  try {
    iterator = source[Symbol.asyncIterator]();
  } catch (error) {
    return RpcError.from(error);
  }
  if (iterator === null || typeof iterator !== 'object' || typeof iterator.next !== 'function') {
    return new RpcError(Status.INTERNAL, "a client interceptor returned a response stream whose [Symbol.asyncIterator]() gave no iterator");
  }
  return iterator;
}

/** A response stream over an interceptor's iterator: errors as RpcError; `onOver` once the reader is done, failed or stopped. */
export class InterceptedStream<T> implements MessageStream<T> {
  private over = false;

  constructor(
    private readonly iterator: AsyncIterator<T>,
    private readonly onOver?: () => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    let result: IteratorResult<T>;
    try {
      result = await this.iterator.next();
    } catch (error) {
      this.finish();
      throw RpcError.from(error);
    }
    if (result.done === true) {
      this.finish();
      return DONE;
    }
    return result;
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.finish();
    try {
      await this.iterator.return?.();
    } catch (error) {
      throw RpcError.from(error);
    }
    return DONE;
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.onOver?.();
  }
}

/** A bidi handle an interceptor returned, as the caller holds it: reads and sends fail with RpcErrors. */
export class InterceptedBidi extends InterceptedStream<unknown> implements BidiCall<unknown, unknown> {
  constructor(
    private readonly handle: BidiCall<unknown, unknown>,
    onOver?: () => void,
  ) {
    super(handle, onOver);
  }

  send(request: unknown): Promise<void> {
    try {
      return Promise.resolve(this.handle.send(request)).catch(rethrowAsRpcError);
    } catch (error) {
      return Promise.reject(RpcError.from(error));
    }
  }

  end(): void {
    try {
      this.handle.end();
    } catch (error) {
      throw RpcError.from(error);
    }
  }
}

function rethrowAsRpcError(error: unknown): never {
  throw RpcError.from(error);
}
