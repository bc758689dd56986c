/**
 * The caller side of a bidi call: the handle the caller writes requests to (`send`, `end`) and reads responses from
 * (`for await`), or, when the call was given an iterable of requests, the handle whose sending side that iterable
 * drives. The call itself is a ClientStreamCall; a call that could not start is a handle that fails.
 */
import { Status } from '../../wire/constants.js';
import type { Session } from '../../session/session.js';
import type { MessageStream } from '../inbox.js';
import { RpcError } from '../rpc-error.js';
import { discardSource } from '../sender.js';
import type { MethodDescriptor } from '../service.js';
import type { CallCounter } from '../call-stats.js';
import type { CallOptions } from './call-options.js';
import { encodeRequest, openCall } from './request.js';
import { ClientStreamCall, failedStream, pumpRequests } from './stream-call.js';

/**
 * The caller's handle on a bidi call: write with `send`, finish with `end`, read the responses with `for await`. A
 * call started with an iterable of requests (`chat(requests)`) sends what it yields and ends when it ends; its
 * `send` rejects and its `end` does nothing.
 */
export interface BidiCall<Req, Res> extends MessageStream<Res> {
  /**
   * Sends one request; resolves at once while there is credit, else once there is. Rejects once the call is over,
   * and with FAILED_PRECONDITION after `end()` or on a call whose requests come from an iterable.
   */
  send(request: Req): Promise<void>;
  /** Ends the caller's side cleanly after what was sent (the handler's request iterator finishes). */
  end(): void;
}

/** @internal A bidi call; with `requests`, their iterable drives its sending side (a failure of theirs fails the call). */
export function callBidi(
  core: Session,
  counter: CallCounter,
  descriptor: MethodDescriptor,
  requests: Iterable<unknown> | AsyncIterable<unknown> | undefined,
  options: CallOptions | undefined,
): BidiCall<unknown, unknown> {
  const opened = openCall(core, descriptor, options);
  if (opened instanceof RpcError) {
    if (requests !== undefined) discardSource(requests); // handed over: a Readable or a generator must not wait for GC to close
    counter.failedToStart(opened.code);
    return failedBidi(opened);
  }
  const call = new ClientStreamCall(opened.stream, counter, descriptor, options, opened.budget, true);
  const handle = new BidiHandle(core, descriptor, call, call.responses!, undefined, requests !== undefined);
  if (requests !== undefined) pumpRequests(core, descriptor, call, requests);
  return handle;
}

/** @internal A bidi call that could not start: sends reject and reading throws `error`. */
export function failedBidi(error: RpcError): BidiCall<unknown, unknown> {
  return new BidiHandle(undefined, undefined, undefined, failedStream(error), error, false);
}

class BidiHandle implements BidiCall<unknown, unknown> {
  private ended: boolean;

  constructor(
    private readonly core: Session | undefined,
    private readonly descriptor: MethodDescriptor | undefined,
    private readonly call: ClientStreamCall | undefined,
    private readonly responses: MessageStream<unknown>,
    private readonly openError: RpcError | undefined,
    /** True when an iterable of requests drives the sending side: the caller neither sends nor ends. */
    private readonly driven: boolean,
  ) {
    this.ended = driven;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown, undefined>> {
    return this.responses.next();
  }

  return(): Promise<IteratorResult<unknown, undefined>> {
    return this.responses.return();
  }

  send(request: unknown): Promise<void> {
    if (this.call === undefined) return Promise.reject(this.openError!);
    if (this.driven) {
      const message = `send() on a ${this.descriptor!.path} call started with an iterable of requests: its requests come from that iterable (start the call without one to send them one by one)`;
      return Promise.reject(new RpcError(Status.FAILED_PRECONDITION, message));
    }
    if (this.ended) return Promise.reject(new RpcError(Status.FAILED_PRECONDITION, 'send() after end(): the caller already ended its side of the call'));
    const bytes = encodeRequest(this.core!, this.descriptor!, request);
    if (bytes instanceof RpcError) return Promise.reject(bytes);
    return this.call.sender.send(bytes) ?? Promise.resolve();
  }

  end(): void {
    if (this.ended || this.call === undefined) return;
    this.ended = true;
    if (!this.call.sender.failed && this.call.stream.writable) this.call.stream.endClean();
  }
}
