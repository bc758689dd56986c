/**
 * Sends what a serverStream or bidi handler returns when it is an async iterable (an async generator, most often): pulls
 * one item at a time, has the call encode and queue it, and waits for the stream's `onWritable` while the queue is past
 * its high-water mark. It does what `pumpSource` (sender.ts) does with `for await` and a StreamSender, without an
 * async function: a stream whose handler idles (a watch, a tail: a `next()` pending for minutes) then holds this
 * object, its two callbacks and one promise reaction, not an async function's frame, its await closures, a
 * StreamSender, the send callback and the chained promise of the outcome (some 650 bytes less per open stream). A sync
 * iterable is drained at once, never idles, and still goes through pumpSource.
 *
 * for-await's rules are kept: `next` is read once and called with no argument; `next()` throwing or rejecting, or a
 * result that is not an object, ends the pump without `return()`; a send that fails (the call is over, an item that
 * does not encode) calls `return()`, waits for it, then reports its own error, which wins over anything `return()`
 * throws or rejects with. The owner hears the outcome once: `finishResponses()` or `onHandlerError(error)`.
 *
 * | state   | event                                                           | next                                |
 * |---------|-----------------------------------------------------------------|-------------------------------------|
 * | PULLING | next() resolved done                                            | ENDED, owner.finishResponses()      |
 * | PULLING | an item, and the call has failed or the item does not send      | CLOSING, iterator.return()          |
 * | PULLING | an item sent, the queue below its high-water mark               | PULLING, next() again               |
 * | PULLING | an item sent, the queue past its high-water mark                | BLOCKED                             |
 * | PULLING | next() threw or rejected, or its result is not an object        | ENDED, owner.onHandlerError(error)  |
 * | BLOCKED | writable() or fail(): then, in a microtask                      | PULLING, or CLOSING once failed     |
 * | CLOSING | return() settled, threw or is missing                           | ENDED, owner.onHandlerError(error)  |
 * fail() in PULLING only records the error: the next item then closes the source (a `done` still ends it cleanly).
 */
import type { RpcError } from '../rpc-error.js';

/** The server call the pump works for (server-call.ts). */
export interface ResponsePumpOwner {
  /** Encodes and queues one response; false once the stream's queue is past its high-water mark. Throws an RpcError. */
  sendResponse(item: unknown): boolean;
  /** The source is exhausted. */
  finishResponses(): void;
  /** The source failed, or a send failed (reported once `return()` has settled). */
  onHandlerError(error: unknown): void;
}

const enum PumpState {
  PULLING,
  BLOCKED,
  CLOSING,
  ENDED,
}

export class ResponsePump {
  private state = PumpState.PULLING;
  private iterator!: AsyncIterator<unknown>;
  private nextMethod!: () => unknown;
  private failure: RpcError | undefined;
  /**
   * The reactions to each `next()`, made once per call, not per item. Bound methods rather than arrow functions: no
   * context object, and nothing for a loader that keeps function names (tsx, esbuild's keepNames) to define on each.
   */
  private readonly onResult: (result: unknown) => void;
  private readonly onRejected: (error: unknown) => void;
  /** Made the first time the queue fills (an idle stream never needs it). */
  private resume: (() => void) | undefined;

  constructor(private readonly owner: ResponsePumpOwner) {
    this.onResult = this.received.bind(this);
    this.onRejected = this.end.bind(this);
  }

  /** Starts pulling `source` through its `method` (its Symbol.asyncIterator, not null). */
  start(source: object, method: unknown): void {
    try {
      const iterator: unknown = (method as (this: object) => unknown).call(source);
      if (iterator === null || (typeof iterator !== 'object' && typeof iterator !== 'function')) {
        throw new TypeError('the response source\'s [Symbol.asyncIterator]() did not return an object');
      }
      this.iterator = iterator as AsyncIterator<unknown>;
      this.nextMethod = (iterator as AsyncIterator<unknown>).next as () => unknown;
    } catch (error) {
      this.end(error);
      return;
    }
    this.pull();
  }

  /** The stream's queue went down to its high-water mark. */
  writable(): void {
    if (this.state === PumpState.BLOCKED) this.resumeSoon();
  }

  /** The call is over: the source is closed at the next item (at once if the pump waits for the queue). */
  fail(error: RpcError): void {
    this.failure ??= error;
    if (this.state === PumpState.BLOCKED) this.resumeSoon();
  }

  get failed(): RpcError | undefined {
    return this.failure;
  }

  /** As an awaited send resumes: never inside the stream's write loop that reported the event. */
  private resumeSoon(): void {
    this.state = PumpState.PULLING;
    queueMicrotask((this.resume ??= this.resumed.bind(this)));
  }

  private resumed(): void {
    if (this.failure !== undefined) this.close(this.failure);
    else this.pull();
  }

  private pull(): void {
    let pending: unknown;
    try {
      pending = this.nextMethod.call(this.iterator);
    } catch (error) {
      this.end(error);
      return;
    }
    // as `await` does: a promise is followed as it is, anything else (a thenable, a plain result) once resolved
    void Promise.resolve(pending).then(this.onResult, this.onRejected);
  }

  private received(result: unknown): void {
    let item: unknown;
    try {
      if (result === null || (typeof result !== 'object' && typeof result !== 'function')) {
        throw new TypeError(`the response source's next() resolved to ${result === null ? 'null' : typeof result}, not an object`);
      }
      if ((result as IteratorResult<unknown>).done) {
        this.state = PumpState.ENDED;
      } else {
        item = (result as IteratorResult<unknown>).value;
      }
    } catch (error) {
      this.end(error);
      return;
    }
    if (this.state === PumpState.ENDED) {
      this.owner.finishResponses();
      return;
    }
    if (this.failure !== undefined) {
      this.close(this.failure);
      return;
    }
    let belowHighWater: boolean;
    try {
      belowHighWater = this.owner.sendResponse(item);
    } catch (error) {
      this.close(error);
      return;
    }
    if (belowHighWater) this.pull();
    else this.state = PumpState.BLOCKED;
  }

  /** Lets the source clean up (its finally blocks run), then reports `error`, whatever return() did. */
  private close(error: unknown): void {
    this.state = PumpState.CLOSING;
    let returned: unknown;
    try {
      const method = (this.iterator as { return?: unknown }).return;
      if (method === undefined || method === null) {
        this.end(error);
        return;
      }
      returned = (method as (this: object) => unknown).call(this.iterator);
    } catch {
      this.end(error);
      return;
    }
    const report = (): void => this.end(error);
    void Promise.resolve(returned).then(report, report);
  }

  private end(error: unknown): void {
    this.state = PumpState.ENDED;
    this.owner.onHandlerError(error);
  }
}
