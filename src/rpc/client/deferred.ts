/**
 * Call results the caller holds before the call has started: a response stream or a bidi handle handed back at once
 * while a promise (a connection to wait for, an interceptor chain) decides which real call stands behind it. Reads and
 * sends wait for that call, in order; a reader that stops first aborts `stop`, so a call still waiting is never sent.
 * A start that rejects all the same (it should resolve a failed stream) fails reads and sends with an RpcError, and
 * never leaves a rejection unhandled: in a daemon that is a crash.
 */
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
import { failedBidi, type BidiCall } from './bidi-call.js';
import { failedStream } from './stream-call.js';

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/** What a deferred result tells when its reader stops before the call started (an AbortController is one). */
export interface Stoppable {
  abort(reason: unknown): void;
}

/** A response stream whose call starts once `started` resolves (a failed stream if it could not start). */
export class DeferredStream<T> implements MessageStream<T> {
  private inner: MessageStream<T> | undefined;
  private stopped = false;
  private readonly started: Promise<MessageStream<T>>;

  constructor(
    started: Promise<MessageStream<T>>,
    private readonly stop?: Stoppable,
  ) {
    this.started = started.then(undefined, (error: unknown) => failedStream<T>(RpcError.from(error)));
    void this.started.then((inner) => {
      this.inner = inner;
      if (this.stopped) ignoreRejection(() => inner.return());
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    return (this.inner ?? (await this.started)).next();
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    this.stopped = true;
    if (this.inner !== undefined) return this.inner.return();
    // still waiting: the wait ends (CANCELLED) and the call is never sent; the reader is done now
    this.stop?.abort(new DOMException('the reader stopped', 'AbortError'));
    return DONE;
  }
}

/** A bidi call whose call starts once `started` resolves (a failed one if it could not start); `end()` follows the sends before it. */
export class DeferredBidi implements BidiCall<unknown, unknown> {
  private inner: BidiCall<unknown, unknown> | undefined;
  private readonly started: Promise<BidiCall<unknown, unknown>>;

  constructor(
    started: Promise<BidiCall<unknown, unknown>>,
    private readonly stop?: Stoppable,
  ) {
    this.started = started.then(undefined, (error: unknown) => failedBidi(RpcError.from(error)));
    void this.started.then((inner) => (this.inner = inner));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async send(request: unknown): Promise<void> {
    return (this.inner ?? (await this.started)).send(request);
  }

  end(): void {
    if (this.inner !== undefined) this.inner.end();
    else void this.started.then((inner) => ignoreRejection(() => inner.end()));
  }

  async next(): Promise<IteratorResult<unknown, undefined>> {
    return (this.inner ?? (await this.started)).next();
  }

  async return(): Promise<IteratorResult<unknown, undefined>> {
    if (this.inner === undefined) this.stop?.abort(new DOMException('the reader stopped', 'AbortError'));
    return (this.inner ?? (await this.started)).return();
  }
}

/** Runs what a reader asked for after it stopped waiting: no one is left to hear how it went. */
function ignoreRejection(action: () => unknown): void {
  try {
    Promise.resolve(action()).catch(() => undefined);
  } catch {
    // the reader is gone: a throw here has no one to reach
  }
}
