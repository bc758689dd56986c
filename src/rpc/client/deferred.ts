/**
 * Call results the caller holds before the call has started: a response stream or a bidi handle handed back at once
 * while a promise (a connection to wait for, an interceptor chain) decides which real call stands behind it. Reads and
 * sends wait for that call, in order; a reader that stops first aborts `stop`, so a call still waiting is never sent.
 */
import type { MessageStream } from '../inbox.js';
import type { BidiCall } from './bidi-call.js';

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/** A response stream whose call starts once `started` resolves; `started` must not reject (resolve a failed stream). */
export class DeferredStream<T> implements MessageStream<T> {
  private inner: MessageStream<T> | undefined;
  private stopped = false;

  constructor(
    private readonly started: Promise<MessageStream<T>>,
    private readonly stop?: AbortController,
  ) {
    void started.then((inner) => {
      this.inner = inner;
      if (this.stopped) void inner.return();
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

/** A bidi call whose call starts once `started` resolves; `end()` follows the sends before it. */
export class DeferredBidi implements BidiCall<unknown, unknown> {
  private inner: BidiCall<unknown, unknown> | undefined;

  constructor(
    private readonly started: Promise<BidiCall<unknown, unknown>>,
    private readonly stop?: AbortController,
  ) {
    void started.then((inner) => (this.inner = inner));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async send(request: unknown): Promise<void> {
    return (this.inner ?? (await this.started)).send(request);
  }

  end(): void {
    if (this.inner !== undefined) this.inner.end();
    else void this.started.then((inner) => inner.end());
  }

  async next(): Promise<IteratorResult<unknown, undefined>> {
    return (this.inner ?? (await this.started)).next();
  }

  async return(): Promise<IteratorResult<unknown, undefined>> {
    if (this.inner === undefined) this.stop?.abort(new DOMException('the reader stopped', 'AbortError'));
    return (this.inner ?? (await this.started)).return();
  }
}
