/**
 * The caller side of a unary call: encodes the request, opens the stream, and settles exactly once: with the
 * response, with the peer's error status, with CANCELLED when the caller's signal aborts, or with DEADLINE_EXCEEDED
 * when the caller's own timer fires (so the caller never waits past its deadline on the peer's word).
 */
import { Status } from '../../wire/constants.js';
import type { Session } from '../../session/session.js';
import type { Stream, StreamEvents, StreamTrailer } from '../../session/stream.js';
import { decodeFailure } from '../codec.js';
import { deadlineTimer, type DeadlineWatcher } from '../deadline.js';
import { RpcError } from '../rpc-error.js';
import type { CallCounter, CountedCall } from '../call-stats.js';
import type { MethodDescriptor } from '../service.js';
import { abortError, unwatchSignal, watchSignal, type AbortWatcher } from './abort-watch.js';
import type { CallOptions } from './call-options.js';
import { encodeRequest, openCall } from './request.js';
import { completeWithResponse } from './response.js';

export function callUnary(
  core: Session,
  counter: CallCounter,
  descriptor: MethodDescriptor,
  request: unknown,
  options: CallOptions | undefined,
): Promise<unknown> {
  const bytes = encodeRequest(core, descriptor, request);
  if (bytes instanceof RpcError) return failedToStart(counter, bytes);
  const opened = openCall(core, descriptor, options);
  if (opened instanceof RpcError) return failedToStart(counter, opened);
  const call = new ClientUnaryCall(opened.stream, counter, descriptor, options, opened.budget);
  opened.stream.events = call;
  opened.stream.sendMessage(bytes, true);
  return call.promise;
}

/** A call that failed before its stream opened: counted, and rejected with `error`. */
function failedToStart(counter: CallCounter, error: RpcError): Promise<never> {
  counter.failedToStart(error.code);
  return Promise.reject(error);
}

class ClientUnaryCall implements StreamEvents, AbortWatcher, DeadlineWatcher, CountedCall {
  readonly promise: Promise<unknown>;
  private resolve!: (value: unknown) => void;
  private reject!: (error: RpcError) => void;
  private response: unknown;
  private hasResponse = false;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: Stream,
    readonly counter: CallCounter,
    private readonly descriptor: MethodDescriptor,
    private readonly options: CallOptions | undefined,
    budget: number | undefined,
  ) {
    counter.start();
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // no closures: most calls have neither a deadline nor a signal, and those that do are told through their methods
    this.timer = deadlineTimer(budget, this);
    if (options?.signal !== undefined) watchSignal(options.signal, this);
  }

  onMessage(bytes: Uint8Array): void {
    if (this.settled) return;
    if (this.hasResponse) {
      this.fail(new RpcError(Status.UNIMPLEMENTED, `${this.descriptor.path} is unary but the peer sent more than one response`), Status.CANCELLED);
      return;
    }
    try {
      this.response = this.descriptor.def.codec.decode(bytes);
      this.hasResponse = true;
    } catch (error) {
      this.fail(decodeFailure(this.descriptor.def.codec, 'the response', error), Status.CANCELLED);
    }
  }

  onEnd(trailer: StreamTrailer): void {
    if (this.settled) return;
    if (trailer.status !== Status.OK) {
      this.fail(new RpcError(trailer.status, trailer.message, { metadata: trailer.metadata }));
      return;
    }
    if (!this.hasResponse) {
      this.fail(new RpcError(Status.UNIMPLEMENTED, `${this.descriptor.path} is unary but the peer sent no response`));
      return;
    }
    // the usual call has neither onTrailer nor an output schema: it settles here, without the two closures below
    if (this.options?.onTrailer === undefined && this.descriptor.def.output === undefined) {
      this.succeed(this.response);
      return;
    }
    completeWithResponse(this.descriptor, this.options, trailer, this.response, (value) => this.succeed(value), (error) => this.fail(error));
  }

  onReset(status: Status, message: string, refused: boolean): void {
    this.fail(new RpcError(status, message, { retrySafe: refused }));
  }

  /** The caller's signal aborted. */
  onAbort(signal: AbortSignal): void {
    this.fail(abortError(signal), Status.CANCELLED);
  }

  /** The caller's own deadline passed: it does not wait on the peer's word. */
  onDeadline(): void {
    this.timer = undefined;
    this.fail(new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the response arrived'), Status.DEADLINE_EXCEEDED);
  }

  private succeed(value: unknown): void {
    if (this.settled) return;
    this.counter.finish(Status.OK);
    this.settle(Status.CANCELLED, 'the call is already over');
    this.resolve(value);
  }

  /** Settles with `error`; the peer is told to stop with `resetStatus` if the stream is still open. */
  private fail(error: RpcError, resetStatus: Status = Status.CANCELLED): void {
    if (this.settled) return;
    this.counter.finish(error.code);
    this.settle(resetStatus, error.rawMessage);
    this.reject(error);
  }

  private settle(resetStatus: Status, message: string): void {
    this.settled = true;
    // a stream still open here (the peer answered early, or we gave up) must not outlive the call
    if (!this.stream.closed) this.stream.reset(resetStatus, message);
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.options?.signal !== undefined) unwatchSignal(this.options.signal, this);
  }
}
