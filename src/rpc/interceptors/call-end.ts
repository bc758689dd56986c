/**
 * When a call ends, for the interceptors that report on whole calls (logging, tracing): `next` resolves when a unary
 * call has its response, but a stream, a download or a bidi call goes on after that, until its reader (client) or the
 * response pump (server) is done with what `next` handed back. These helpers wrap what flows so the observer hears,
 * once, how and when the call ended, and, for bulk, how many body bytes went by. They add nothing to a call made
 * without such an interceptor.
 *
 * | what `next` gave          | the end is                                                                          |
 * |---------------------------|-------------------------------------------------------------------------------------|
 * | a response (unary, clientStream, upload) | `next` settling                                                      |
 * | client: responses, body, bidi handle | its reader reaching the end, an error, or stopping (`return()`: CANCELLED) |
 * | server: responses, body   | the pump reaching the end or an error, `return()`, or the call's signal aborting     |
 * | `next` rejecting          | at once, with that error                                                            |
 */
import { Status } from '../../wire/constants.js';
import type { BidiCall } from '../client/bidi-call.js';
import type { CallResult, ClientNext, OutgoingCall } from '../client/outgoing-call.js';
import { RpcError } from '../rpc-error.js';
import type { ByteSource } from '../sender.js';
import type { HandlerResult, IncomingCall, ServerNext } from '../server/interceptor.js';

/** How a call ended: undefined for OK, else the error as an RpcError; `bytes` for upload and download bodies. */
export type CallEndListener = (error: RpcError | undefined, bytes: number | undefined) => void;

type Source<T> = Iterable<T> | AsyncIterable<T>;

/**
 * An async iterator over `source` that tells `end` once how it finished: exhausted (undefined), a failure (the
 * error), or stopped early by `return()` (what `stopped()` says). `onItem` sees each item. `return()` is passed on,
 * so a caller's `break` still cancels the call, and a server's pump still closes the handler's generator.
 */
export class ObservedIterator<T> implements AsyncIterableIterator<T> {
  private iterator: Iterator<T> | AsyncIterator<T> | undefined;
  private ended = false;

  constructor(
    private readonly source: Source<T>,
    private readonly end: (error: unknown) => void,
    private readonly stopped: () => unknown,
    private readonly onItem?: (item: T) => void,
    /** What a failure of the source is rethrown as (exception recovery hides it); default: itself. */
    private readonly mapError?: (error: unknown) => unknown,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    let result: IteratorResult<T>;
    try {
      result = await this.open().next();
    } catch (error) {
      const thrown = this.mapError === undefined ? error : this.mapError(error);
      this.finish(thrown);
      throw thrown;
    }
    if (result.done === true) this.finish(undefined);
    else this.onItem?.(result.value);
    return result;
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    if (!this.ended) this.finish(this.stopped());
    const iterator = this.open();
    await iterator.return?.();
    return { done: true, value: undefined };
  }

  /** Ends the observation from outside (the server call's signal aborted while the source idles). */
  finish(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.end(error);
  }

  private open(): Iterator<T> | AsyncIterator<T> {
    if (this.iterator !== undefined) return this.iterator;
    const source = this.source;
    this.iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    return this.iterator;
  }
}

/** A bidi handle whose end is observed: sends pass through, reads go through an ObservedIterator. */
class ObservedBidi implements BidiCall<unknown, unknown> {
  private readonly responses: ObservedIterator<unknown>;

  constructor(private readonly handle: BidiCall<unknown, unknown>, end: (error: unknown) => void) {
    this.responses = new ObservedIterator(handle, end, readerStopped);
  }

  send(request: unknown): Promise<void> {
    return this.handle.send(request);
  }

  end(): void {
    this.handle.end();
  }

  next(): Promise<IteratorResult<unknown>> {
    return this.responses.next();
  }

  return(): Promise<IteratorResult<unknown, undefined>> {
    return this.responses.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function readerStopped(): RpcError {
  return new RpcError(Status.CANCELLED, 'the caller stopped reading');
}

function asRpcError(error: unknown): RpcError | undefined {
  return error === undefined ? undefined : RpcError.from(error);
}

/** A byte source as something iterable: a lone Uint8Array is one chunk (it is itself iterable, by bytes). */
function chunksOf(body: ByteSource): Source<Uint8Array> {
  return body instanceof Uint8Array ? [body] : body;
}

/**
 * Runs `next(call)` and calls `onEnd` once when the call has ended for the caller. With `countBytes`, an upload's body
 * (a Uint8Array is measured, anything else is wrapped to count) and a download's body report their size.
 */
export function observeClientCall(call: OutgoingCall, next: ClientNext, onEnd: CallEndListener, countBytes: boolean): Promise<CallResult> {
  let bytes: number | undefined;
  const count = (chunk: Uint8Array): void => {
    bytes = (bytes ?? 0) + chunk.byteLength;
  };
  let sent = call;
  if (countBytes && call.kind === 'upload') {
    if (call.body instanceof Uint8Array) bytes = call.body.byteLength;
    else {
      bytes = 0;
      sent = { ...call, body: new ObservedIterator(call.body, noop, noop, count) };
    }
  }
  const end = (error: unknown): void => onEnd(asRpcError(error), bytes);
  let result: Promise<CallResult>;
  try {
    result = next(sent);
  } catch (error) {
    end(error);
    throw error;
  }
  return result.then(
    (value): CallResult => {
      switch (value.kind) {
        case 'serverStream':
          return { kind: value.kind, responses: new ObservedIterator(value.responses, end, readerStopped) };
        case 'download':
          if (countBytes) bytes = 0;
          return { kind: value.kind, body: new ObservedIterator(value.body, end, readerStopped, countBytes ? count : undefined) };
        case 'bidi':
          return { kind: value.kind, call: new ObservedBidi(value.call, end) };
        default:
          end(undefined);
          return value;
      }
    },
    (error: unknown) => {
      end(error);
      throw error;
    },
  );
}

/**
 * Runs `next(call)` and calls `onEnd` once when the handler's part of the call is over: its response returned, or the
 * iterable or body it returned pumped to the end, failed, or stopped because the call ended (cancelled, deadline,
 * connection lost). With `countBytes`, an upload's body as the handler reads it and a download's body are counted.
 */
export function observeServerCall(call: IncomingCall, next: ServerNext, onEnd: CallEndListener, countBytes: boolean): Promise<HandlerResult> {
  let bytes: number | undefined;
  const count = (chunk: Uint8Array): void => {
    bytes = (bytes ?? 0) + chunk.byteLength;
  };
  let passed = call;
  if (countBytes && call.kind === 'upload') {
    bytes = 0;
    passed = { ...call, body: new ObservedIterator(call.body, noop, noop, count) };
  }
  const end = (error: unknown): void => onEnd(asRpcError(error), bytes);
  let result: Promise<HandlerResult>;
  try {
    result = next(passed);
  } catch (error) {
    end(error);
    throw error;
  }
  return result.then(
    (value): HandlerResult => {
      if (value.kind === 'serverStream' || value.kind === 'bidi') {
        return { kind: value.kind, responses: watchServerStream(call, value.responses, end) };
      }
      if (value.kind === 'download') {
        if (countBytes) bytes = 0;
        return { kind: value.kind, body: watchServerStream(call, chunksOf(value.body), end, countBytes ? count : undefined) };
      }
      end(undefined);
      return value;
    },
    (error: unknown) => {
      end(error);
      throw error;
    },
  );
}

/**
 * What a server handler returned, observed until it is pumped out; the call's signal ends the observation too, for a
 * source that idles (a watch) when the caller cancels: the pump would only stop it at its next item.
 */
function watchServerStream<T>(call: IncomingCall, source: Source<T>, end: (error: unknown) => void, onItem?: (item: T) => void): ObservedIterator<T> {
  const signal = call.ctx.signal;
  const stoppedBy = (): unknown => (signal.aborted ? signal.reason : new RpcError(Status.CANCELLED, 'the call ended before its responses did'));
  const onAbort = (): void => observed.finish(signal.reason);
  const observed = new ObservedIterator(
    source,
    (error) => {
      signal.removeEventListener('abort', onAbort);
      end(error);
    },
    stoppedBy,
    onItem,
  );
  if (signal.aborted) observed.finish(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  return observed;
}

function noop(): void {}
