/**
 * The caller side of the streaming kinds. One class drives them all; what differs is what the caller sends (one
 * request, a source of requests, requests written one by one (bidi-call.ts), a request then a bulk body) and what it
 * gets back (one response, or a stream of responses or body chunks that it reads with `for await`).
 *
 * A call settles once: with the peer's clean end, with its error trailer or reset, with CANCELLED when the caller's
 * signal aborts or it stops reading, or with DEADLINE_EXCEEDED from the caller's own timer. After that, sends fail
 * and the stream is reset if it is still open. A bulk body never ends cleanly unless the peer ended it cleanly.
 */
import { Status } from '../../wire/constants.js';
import type { Session } from '../../session/session.js';
import type { Stream, StreamEvents, StreamTrailer } from '../../session/stream.js';
import { decodeFailure } from '../codec.js';
import { deadlineTimer, type DeadlineWatcher } from '../deadline.js';
import { Inbox, NO_INBOX_OWNER, type ByteStream, type InboxOwner, type MessageStream } from '../inbox.js';
import { ProgressWatchdog, type ProgressWatched } from '../progress.js';
import { RpcError } from '../rpc-error.js';
import { validate } from '../schema.js';
import { pumpBody, type SendChunk } from '../body-pump.js';
import { checkBody, checkChunk, discardSource, pumpSource, StreamSender, type ByteSource } from '../sender.js';
import type { CallCounter, CountedCall } from '../call-stats.js';
import type { MethodDescriptor } from '../service.js';
import { abortError, unwatchSignal, watchSignal, type AbortWatcher } from './abort-watch.js';
import type { CallOptions } from './call-options.js';
import { encodeRequest, openCall } from './request.js';
import { completeWithResponse, deliverTrailer, invalidResponse } from './response.js';

export class ClientStreamCall implements StreamEvents, AbortWatcher, DeadlineWatcher, InboxOwner, ProgressWatched, CountedCall {
  readonly responses: Inbox<unknown> | undefined;
  /**
   * What sends the caller's requests or body (`sender`), made on first use: a serverStream or download call sends its
   * one request straight on the stream and never needs one. Until then, the error the call settled with, if it has.
   */
  private sending: StreamSender | RpcError | undefined;
  readonly promise: Promise<unknown> | undefined;
  private resolve!: (value: unknown) => void;
  private reject!: (error: RpcError) => void;
  private response: unknown;
  private hasResponse = false;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: ProgressWatchdog | undefined;

  constructor(
    readonly stream: Stream,
    readonly counter: CallCounter,
    private readonly descriptor: MethodDescriptor,
    private readonly options: CallOptions | undefined,
    budget: number | undefined,
    streamsResponses: boolean,
    progressTimeoutMs = 0,
  ) {
    counter.start();
    if (streamsResponses) {
      stream.autoCredit = false;
      const raw = descriptor.def.kind === 'download';
      if (raw) stream.rawInbound = true;
      const schema = raw ? undefined : descriptor.def.output;
      this.responses = new Inbox(stream, !raw, this, schema && ((value) => this.checkResponse(value)));
    } else {
      this.promise = new Promise((resolve, reject) => {
        this.resolve = resolve;
        this.reject = reject;
      });
      this.promise.catch(() => undefined); // settled even if the caller never awaits it; the caller still sees it
    }
    this.timer = deadlineTimer(budget, this);
    const kind = descriptor.def.kind;
    if (kind === 'upload' || kind === 'download') {
      const timeoutMs = options?.progressTimeoutMs ?? progressTimeoutMs;
      const stall = this.responses !== undefined ? 'sending' : 'reading';
      this.watchdog = new ProgressWatchdog(stream, timeoutMs, this, stall);
    }
    if (options?.signal !== undefined) watchSignal(options.signal, this);
    stream.events = this;
  }

  onMessage(bytes: Uint8Array, charge: number): void {
    if (this.settled) {
      this.stream.consume(charge, !this.stream.rawInbound);
      return;
    }
    if (this.responses !== undefined) {
      if (this.stream.rawInbound) {
        this.responses.push(bytes, charge);
        return;
      }
      let value: unknown;
      try {
        value = this.descriptor.def.codec.decode(bytes);
      } catch (error) {
        this.stream.consume(charge, true);
        this.fail(decodeFailure(this.descriptor.def.codec, 'a response', error));
        return;
      }
      this.responses.push(value, charge);
      return;
    }
    if (this.hasResponse) {
      this.fail(new RpcError(Status.UNIMPLEMENTED, `${this.descriptor.path} returns one response but the peer sent more`));
      return;
    }
    try {
      this.response = this.descriptor.def.codec.decode(bytes);
      this.hasResponse = true;
    } catch (error) {
      this.fail(decodeFailure(this.descriptor.def.codec, 'the response', error));
    }
  }

  onEnd(trailer: StreamTrailer): void {
    if (this.settled) return;
    if (trailer.status !== Status.OK) {
      // after what was already received: the peer sent its data, then its error
      this.fail(new RpcError(trailer.status, trailer.message, { metadata: trailer.metadata }), true);
      return;
    }
    if (this.responses === undefined && !this.hasResponse) {
      this.fail(new RpcError(Status.UNIMPLEMENTED, `${this.descriptor.path} returns one response but the peer sent none`));
      return;
    }
    if (this.responses === undefined) {
      completeWithResponse(this.descriptor, this.options, trailer, this.response, (value) => this.succeed(value), (error) => this.fail(error));
      return;
    }
    const trailerError = deliverTrailer(this.options, trailer);
    if (trailerError !== undefined) {
      this.fail(trailerError);
      return;
    }
    this.responses.end();
    this.counter.finish(Status.OK);
    this.settle(new RpcError(Status.CANCELLED, 'the call is over'));
  }

  onReset(status: Status, message: string, refused: boolean): void {
    this.fail(new RpcError(status, message, { retrySafe: refused }));
  }

  get sender(): StreamSender {
    let sending = this.sending;
    if (!(sending instanceof StreamSender)) {
      const sender = new StreamSender(this.stream);
      if (sending !== undefined) sender.fail(sending); // the call is over: every send fails as it would have
      this.sending = sending = sender;
    }
    return sending;
  }

  onWritable(): void {
    if (this.sending instanceof StreamSender) this.sending.writable();
  }

  /**
   * For the bulk watchdog: a download is stuck while our reader has caught up and nothing arrives, an upload while our
   * bytes wait for credit. A stream still queued for a concurrency slot waits on nobody's bytes: the peer is not
   * stalling it.
   */
  waitingOnPeer(): boolean {
    const stream = this.stream;
    const responses = this.responses;
    return responses !== undefined ? stream.opened && responses.pending === 0 && !stream.remoteDone : stream.sendBlocked;
  }

  progressStalled(error: RpcError): void {
    this.fail(error, false, Status.DEADLINE_EXCEEDED);
  }

  onAbort(signal: AbortSignal): void {
    this.fail(abortError(signal));
  }

  /** The caller's source of requests or body chunks failed: the peer learns why (RESET with its message). */
  sourceFailed(error: unknown): void {
    if (this.settled) return;
    const rpcError = RpcError.from(error);
    this.fail(new RpcError(rpcError.code, `the caller's source failed: ${rpcError.rawMessage}`, { cause: error }), false, rpcError.code);
  }

  /** The caller stopped reading the responses (`break`): the call is cancelled. */
  readerStopped(): void {
    this.fail(new RpcError(Status.CANCELLED, 'the caller stopped reading the responses'));
  }

  private async checkResponse(value: unknown): Promise<unknown> {
    const result = await validate(this.descriptor.def.output!, value);
    if (result.ok) return result.value;
    const error = invalidResponse(result);
    this.fail(error);
    throw error;
  }

  onDeadline(): void {
    this.timer = undefined;
    this.fail(new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the call finished'), false, Status.DEADLINE_EXCEEDED);
  }

  private succeed(value: unknown): void {
    if (this.settled) return;
    this.counter.finish(Status.OK);
    this.settle(new RpcError(Status.CANCELLED, 'the call is over'));
    this.resolve(value);
  }

  /** Settles with `error`; the peer is told with `resetStatus` if the stream is still open. */
  fail(error: RpcError, afterQueued = false, resetStatus: Status = Status.CANCELLED): void {
    if (this.settled) return;
    this.counter.finish(error.code);
    this.settle(error, resetStatus);
    this.responses?.fail(error, afterQueued);
    this.reject?.(error);
  }

  private settle(reason: RpcError, resetStatus: Status = Status.CANCELLED): void {
    this.settled = true;
    if (this.sending instanceof StreamSender) this.sending.fail(reason);
    else this.sending = reason;
    // a stream still open here (the peer answered early, or we gave up) must not outlive the call
    if (!this.stream.closed) this.stream.reset(resetStatus, reason.rawMessage);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watchdog?.stop();
    if (this.options?.signal !== undefined) unwatchSignal(this.options.signal, this);
  }
}

/** An Inbox that fails at the first read: what a streaming call returns when it could not even start (counted, given its counter). */
export function failedStream<T>(error: RpcError, counter?: CallCounter): Inbox<T> {
  counter?.failedToStart(error.code);
  const inbox = new Inbox<T>(undefined, true, NO_INBOX_OWNER);
  inbox.fail(error);
  return inbox;
}

export function callServerStream(
  core: Session,
  counter: CallCounter,
  descriptor: MethodDescriptor,
  request: unknown,
  options?: CallOptions,
): MessageStream<unknown> {
  const bytes = encodeRequest(core, descriptor, request);
  if (bytes instanceof RpcError) return failedStream(bytes, counter);
  const window = descriptor.def.kind === 'download' ? core.options.bulkWindow : undefined;
  const opened = openCall(core, descriptor, options, window);
  if (opened instanceof RpcError) return failedStream(opened, counter);
  const call = new ClientStreamCall(opened.stream, counter, descriptor, options, opened.budget, true, core.options.progressTimeoutMs);
  opened.stream.sendMessage(bytes, true);
  return call.responses!;
}

export function callDownload(core: Session, counter: CallCounter, descriptor: MethodDescriptor, request: unknown, options?: CallOptions): ByteStream {
  return callServerStream(core, counter, descriptor, request, options) as ByteStream;
}

export function callClientStream(
  core: Session,
  counter: CallCounter,
  descriptor: MethodDescriptor,
  requests: Iterable<unknown> | AsyncIterable<unknown>,
  options?: CallOptions,
): Promise<unknown> {
  const opened = openCall(core, descriptor, options);
  if (opened instanceof RpcError) {
    discardSource(requests); // the caller handed them over: a Readable or a generator must not wait for GC to close
    counter.failedToStart(opened.code);
    return Promise.reject(opened);
  }
  const call = new ClientStreamCall(opened.stream, counter, descriptor, options, opened.budget, false);
  pumpRequests(core, descriptor, call, requests);
  return call.promise!;
}

/** Sends every request `requests` yields on `call` (clientStream, or a bidi call given an iterable), then ends its side. */
export function pumpRequests(core: Session, descriptor: MethodDescriptor, call: ClientStreamCall, requests: Iterable<unknown> | AsyncIterable<unknown>): void {
  pump(call, requests, (request) => {
    const bytes = encodeRequest(core, descriptor, request);
    if (bytes instanceof RpcError) throw bytes;
    return call.sender.send(bytes);
  });
}

export function callUpload(
  core: Session,
  counter: CallCounter,
  descriptor: MethodDescriptor,
  request: unknown,
  body: ByteSource,
  options?: CallOptions,
): Promise<unknown> {
  const bytes = encodeRequest(core, descriptor, request);
  if (bytes instanceof RpcError) {
    discardSource(body);
    counter.failedToStart(bytes.code);
    return Promise.reject(bytes);
  }
  try {
    checkBody(body);
  } catch (error) {
    counter.failedToStart(Status.INVALID_ARGUMENT);
    return Promise.reject(new RpcError(Status.INVALID_ARGUMENT, (error as Error).message, { retrySafe: true }));
  }
  const opened = openCall(core, descriptor, options);
  if (opened instanceof RpcError) {
    discardSource(body); // the caller handed the body over: an open file must not wait for GC to close
    counter.failedToStart(opened.code);
    return Promise.reject(opened);
  }
  const call = new ClientStreamCall(opened.stream, counter, descriptor, options, opened.budget, false, core.options.progressTimeoutMs);
  opened.stream.sendMessage(bytes);
  const sender = call.sender;
  const sendChunk: SendChunk = (chunk) => {
    if (sender.failed) throw sender.failed;
    return sender.send(checkChunk(chunk), true);
  };
  settleWhenPumped(call, pumpBody(body, sendChunk));
  return call.promise!;
}

/** Sends everything `source` yields, then ends the caller's side; a source that fails fails the call. */
function pump<T>(call: ClientStreamCall, source: Iterable<T> | AsyncIterable<T>, send: (item: T) => Promise<void> | undefined): void {
  const pumped = pumpSource(source, (item) => {
    if (call.sender.failed) throw call.sender.failed;
    return send(item);
  });
  settleWhenPumped(call, pumped);
}

/** Once everything is sent the caller's side ends cleanly; a source that failed fails the call. */
function settleWhenPumped(call: ClientStreamCall, pumped: Promise<void>): void {
  pumped.then(
    () => {
      if (!call.sender.failed) call.stream.endClean();
    },
    (error: unknown) => {
      // a send that failed because the call is over is not the source's fault
      if (error !== call.sender.failed) call.sourceFailed(error);
    },
  );
}
