/**
 * The handler side of a call, for every method kind: asks `authorize` (when set) before anything else, reads the
 * request (one message, a stream of messages, or one message and a bulk body), runs the handler with its context
 * (behind the route's server interceptors, if any), and sends what it returns (one response, the messages of an
 * iterable, or the chunks of a byte source) followed by the trailer. Enforces the deadline it was given. The
 * stream's concurrency slot is released only once the handler, and any response iterable it returned, has finished,
 * even when the call was cancelled earlier (the Rapid Reset lesson).
 * Past ~500 lines (522) because it is one job, a call's lifecycle across every kind, whose states are set from the
 * request, handler and response paths alike; its parts that could leave have (response-pump.ts, held-input.ts,
 * draining.ts, authorize.ts, the lazy signal in context.ts, the source pumps in ../body-pump.ts; issue 13's counting
 * is a counter handed in, call-stats.ts). Splitting the request path from the response path would put one call's
 * settle-once state in two files.
 */
import { isThenable } from '../../promises.js';
import { Status } from '../../wire/constants.js';
import { encodeMetadata, type Metadata } from '../../wire/metadata.js';
import type { Stream, StreamEvents, StreamTrailer } from '../../session/stream.js';
import type { SessionPeer } from '../../session/handshake.js';
import type { Session } from '../../session/session.js';
import { decodeFailure } from '../codec.js';
import { CodecLimitError } from '../msgpack-budget.js';
import { deadlineFromWire, deadlineTimer, type DeadlineWatcher } from '../deadline.js';
import { Inbox, NO_INBOX_OWNER } from '../inbox.js';
import { ProgressWatchdog, type ProgressWatched } from '../progress.js';
import { RpcError } from '../rpc-error.js';
import { validate, validateThen, type ValidationResult } from '../schema.js';
import { pumpBody } from '../body-pump.js';
import { checkBody, checkChunk, discardSource, pumpSource, StreamSender, type ByteSource } from '../sender.js';
import type { MethodDescriptor, MethodKind } from '../service.js';
import type { CallCounter, CallCounters, CountedCall } from '../call-stats.js';
import type { CallAuthorizer } from './authorize.js';
import { abortControllerOf, abortLazily, type HandlerContext, type LazyAbort } from './context.js';
import type { DrainWatch, DrainWatcher } from './draining.js';
import { HeldInput } from './held-input.js';
import { runChain } from './interceptor.js';
import { ResponsePump, type ResponsePumpOwner } from './response-pump.js';
import type { Route } from './registry.js';

/**
 * The connection a call came in on: the core session it runs on, and the handle a handler gets as `ctx.session`
 * (opaque here: the rpc session sits above this file). One per session, shared by its calls.
 */
export interface ServerHost {
  readonly core: Session;
  readonly session: unknown;
  /** Tells the calls whose handlers read `ctx.draining` that the connection began to go away. */
  readonly drain: DrainWatch;
  /** The `authorize` option, asked as each call opens (authorize.ts); undefined: calls run unasked. */
  readonly authorize: CallAuthorizer | undefined;
  /** Where the calls served here are counted (call-stats.ts). */
  readonly calls: CallCounters;
}

/** Kinds whose caller sends exactly one request message and ends its side. */
const SINGLE_REQUEST: ReadonlySet<MethodKind> = new Set(['unary', 'serverStream', 'download']);
/** Kinds whose handler answers with one response message. */
const SINGLE_RESPONSE: ReadonlySet<MethodKind> = new Set(['unary', 'clientStream', 'upload']);

export class ServerCall implements StreamEvents, HandlerContext, DeadlineWatcher, DrainWatcher, ResponsePumpOwner, ProgressWatched, CountedCall {
  readonly deadline: number | undefined;
  readonly counter: CallCounter;
  private readonly kind: MethodKind;
  private readonly descriptor: MethodDescriptor;
  private abort: LazyAbort;
  /** Made when the handler first reads `ctx.draining`: most never do, so most calls allocate nothing for it. */
  private drainController: AbortController | undefined;
  private request: unknown;
  private hasRequest = false;
  /** clientStream and bidi: the requests; upload: the body. */
  private requests: Inbox<unknown> | undefined;
  private sender: StreamSender | ResponsePump | undefined;
  /** True from the start of input validation until the handler (and its response iterable) has settled. */
  private running = false;
  /** True once the outcome is decided (response sent, error sent, or aborted); later results are dropped. */
  private done = false;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: ProgressWatchdog | undefined;
  private trailerMetadata: Metadata | undefined;
  /** While an `authorize` answer is pending: what arrives meanwhile, held unread and uncredited. */
  private held: HeldInput | undefined;

  constructor(
    private readonly host: ServerHost,
    private readonly stream: Stream,
    private readonly route: Route,
    readonly metadata: Metadata,
    deadlineMs: number,
  ) {
    const descriptor = (this.descriptor = route.descriptor);
    this.counter = host.calls.servedFor(descriptor);
    this.counter.start();
    this.kind = descriptor.def.kind;
    this.deadline = deadlineFromWire(deadlineMs);
    if (this.deadline !== undefined) this.timer = deadlineTimer(deadlineMs, this);
    if (!SINGLE_REQUEST.has(this.kind)) stream.autoCredit = false;
    stream.resetAfterEnd = true;
    if (this.kind === 'clientStream' || this.kind === 'bidi') {
      const schema = descriptor.def.input;
      this.requests = new Inbox(stream, true, NO_INBOX_OWNER, schema && ((value) => this.checkRequest(value)));
    }
    if (this.kind === 'upload' || this.kind === 'download') {
      const stall = this.kind === 'upload' ? 'sending' : 'reading';
      this.watchdog = new ProgressWatchdog(stream, host.core.options.progressTimeoutMs, this, stall);
    }
  }

  /**
   * Called once the stream's events point here. With the `authorize` option it is asked first, before anything of the
   * request is read: a refusal ends the call; an answer that comes later holds what arrives meanwhile (HeldInput) with
   * no credit returned, so neither the codec, nor a validator, nor an upload's bulk window serves a caller not yet
   * allowed. Then (or at once without authorize) handlers that read a request stream start.
   */
  start(): void {
    const authorize = this.host.authorize;
    if (authorize === undefined) return this.begin();
    const verdict = authorize(this);
    if (verdict === undefined) return this.begin();
    if (verdict instanceof RpcError) return this.fail(verdict.code, verdict.rawMessage);
    this.running = true; // the concurrency slot stays taken while authorize runs, as while a validator does
    this.held = new HeldInput(this.stream, this, this.kind === 'upload');
    this.stream.events = this.held;
    this.stream.autoCredit = false;
    void verdict.then((refusal) => this.authorized(refusal)); // never rejects (callAuthorizer)
  }

  private begin(): void {
    if (this.requests !== undefined) this.invoke([this.requests, this]);
  }

  /** A pending `authorize` answered: the call is refused, or runs with what was held meanwhile. */
  private authorized(refusal: RpcError | undefined): void {
    const held = this.held!;
    this.held = undefined;
    this.running = false;
    if (this.done) {
      this.release(); // cancelled, reset or past its deadline while authorize ran: its slot was kept until now
      return;
    }
    this.stream.events = this;
    if (refusal !== undefined) {
      this.fail(refusal.code, refusal.rawMessage);
      return;
    }
    this.stream.autoCredit = SINGLE_REQUEST.has(this.kind);
    try {
      this.begin();
      held.replay(this.stream.autoCredit);
    } catch (error) {
      // as the stream does when its owner throws on a delivery: this call fails, nothing else
      const message = `the call failed on the receiving side: ${(error as Error)?.message ?? String(error)}`;
      this.stream.reset(Status.INTERNAL, message);
      this.onReset(Status.INTERNAL, message);
    }
  }

  get method(): string {
    return this.descriptor.path;
  }

  get signal(): AbortSignal {
    return (this.abort = abortControllerOf(this.abort)).signal;
  }

  get draining(): AbortSignal {
    if (this.drainController === undefined) {
      this.drainController = new AbortController();
      const already = this.host.drain.watch(this);
      if (already !== undefined) this.drainController.abort(already);
      else if (this.released) this.host.drain.unwatch(this); // read after the call ended: nothing will unwatch it
    }
    return this.drainController.signal;
  }

  /** The connection began to go away: `ctx.draining` fires. */
  onDraining(reason: RpcError): void {
    this.drainController?.abort(reason);
  }

  get peer(): SessionPeer {
    return this.host.core.peer;
  }

  /** The handler's `ctx.session`. */
  get session(): unknown {
    return this.host.session;
  }

  get trailer(): Metadata {
    return (this.trailerMetadata ??= {});
  }

  onMessage(bytes: Uint8Array, charge: number): void {
    if (this.kind === 'upload' && this.hasRequest) {
      this.requests!.push(bytes, charge); // a chunk of the body (raw: no copy, no codec)
      return;
    }
    if (this.kind === 'clientStream' || this.kind === 'bidi') {
      let value: unknown;
      try {
        value = this.descriptor.def.codec.decode(bytes);
      } catch (error) {
        this.stream.consume(charge, true);
        const failure = decodeFailure(this.descriptor.def.codec, 'a request', error);
        this.fail(failure.code, failure.rawMessage);
        return;
      }
      this.requests!.push(value, charge);
      return;
    }
    if (this.kind === 'upload') this.stream.consume(charge, true);
    if (this.hasRequest) {
      this.fail(Status.UNIMPLEMENTED, `${this.method} takes one request message but received more`);
      return;
    }
    try {
      this.request = this.descriptor.def.codec.decode(bytes);
      this.hasRequest = true;
    } catch (error) {
      const failure = decodeFailure(this.descriptor.def.codec, 'the request', error);
      this.fail(failure.code, failure.rawMessage);
      return;
    }
    if (this.kind === 'upload') this.startUpload();
  }

  onEnd(trailer: StreamTrailer): void {
    if (this.done) return;
    if (trailer.status !== Status.OK) {
      this.cancel(new RpcError(Status.CANCELLED, `the caller ended the call: ${trailer.message}`));
      return;
    }
    if (!SINGLE_REQUEST.has(this.kind) && this.kind !== 'upload') {
      this.requests!.end();
      return;
    }
    if (!this.hasRequest) {
      this.fail(Status.UNIMPLEMENTED, `${this.method} takes one request message but received none`);
      return;
    }
    if (this.kind === 'upload') {
      this.requests!.end(); // the body's EOF: the caller ended cleanly
      return;
    }
    this.validateThenInvoke((request) => [request, this]);
  }

  onReset(status: Status, message: string): void {
    // the caller cancelled, its deadline passed, its source failed, or the connection is gone: the handler must stop
    this.cancel(new RpcError(status === Status.OK ? Status.CANCELLED : status, message));
  }

  onWritable(): void {
    this.sender?.writable();
  }

  /** The request of an upload arrived: the body follows as raw chunks, in a window sized for bulk. */
  private startUpload(): void {
    this.stream.rawInbound = true;
    this.stream.growReceiveWindow(this.host.core.options.bulkWindow);
    const body = new Inbox<Uint8Array>(this.stream, false, NO_INBOX_OWNER);
    this.requests = body as Inbox<unknown>;
    this.validateThenInvoke((request) => [request, body, this]);
  }

  private validateThenInvoke(args: (request: unknown) => unknown[]): void {
    // handed over, not kept: a response waiting for the peer's credit must not also hold the request (T-D9)
    const request = this.request;
    this.request = undefined;
    const schema = this.descriptor.def.input;
    if (schema === undefined) {
      this.invoke(args(request));
      return;
    }
    this.running = true;
    validateThen(schema, request, (result) => this.onValidated(result, args));
  }

  private onValidated(result: ValidationResult, args: (request: unknown) => unknown[]): void {
    if (result.ok && !this.done) {
      this.invoke(args(result.value));
      return;
    }
    if (!result.ok) this.failValidation(result);
    this.release(); // the validator has finished and no handler will run
  }

  private failValidation(result: ValidationResult & { ok: false }): RpcError {
    const error = result.crashed
      ? new RpcError(Status.INTERNAL, `input validation failed to run: ${result.message}`)
      : new RpcError(Status.INVALID_ARGUMENT, `invalid request: ${result.message}`);
    this.fail(error.code, error.rawMessage);
    return error;
  }

  /** A request of a stream, as the handler reads it: invalid ones end the call with INVALID_ARGUMENT. */
  private async checkRequest(value: unknown): Promise<unknown> {
    const result = await validate(this.descriptor.def.input!, value);
    if (result.ok) return result.value;
    throw this.failValidation(result);
  }

  private invoke(args: unknown[]): void {
    this.running = true;
    let out: unknown;
    try {
      // with server interceptors, the handler runs at the end of their chain
      const chain = this.route.chain;
      out = chain === undefined ? this.route.handler(...args) : runChain(chain, args);
      if (isThenable(out)) {
        out.then(
          (value) => this.onHandlerResult(value),
          (error: unknown) => this.onHandlerError(error),
        );
        return;
      }
    } catch (error) {
      // a handler that throws, or a thenable whose then() throws
      this.onHandlerError(error);
      return;
    }
    this.onHandlerResult(out);
  }

  private onHandlerResult(value: unknown): void {
    if (SINGLE_RESPONSE.has(this.kind) || this.done) {
      try {
        if (!this.done) this.respond(value);
        else if (!SINGLE_RESPONSE.has(this.kind)) discardSource(value); // e.g. a file stream returned after the deadline
      } finally {
        this.release();
      }
      return;
    }
    // the handler returned an iterable: it keeps running (and holds its slot) until that is exhausted
    let done: Promise<void> | undefined;
    try {
      done = this.kind === 'download' ? this.sendBody(value as ByteSource) : this.sendResponses(value);
    } catch (error) {
      this.onHandlerError(error);
      return;
    }
    // undefined: a ResponsePump reports the outcome itself
    done?.then(
      () => this.finishResponses(),
      (error: unknown) => this.onHandlerError(error),
    );
  }

  private sendResponses(value: unknown): Promise<void> | undefined {
    if (value === null || typeof value !== 'object' || !(Symbol.asyncIterator in value || Symbol.iterator in value)) {
      throw new RpcError(Status.INTERNAL, `the handler of ${this.method} must return an iterable or async iterable (e.g. an async generator)`);
    }
    const asyncIterator: unknown = (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator];
    if (asyncIterator !== undefined && asyncIterator !== null) {
      // pulled without an async function: an idle stream holds the least it can (response-pump.ts)
      (this.sender = new ResponsePump(this)).start(value, asyncIterator);
      return undefined;
    }
    const sender = (this.sender = new StreamSender(this.stream));
    return pumpSource(value as AsyncIterable<unknown>, (item) => {
      if (sender.failed) throw sender.failed;
      return sender.send(this.encodeResponse(item));
    });
  }

  private sendBody(source: ByteSource): Promise<void> {
    checkBody(source);
    const sender = (this.sender = new StreamSender(this.stream));
    return pumpBody(source, (chunk) => {
      if (sender.failed) throw sender.failed;
      return sender.send(checkChunk(chunk), true);
    });
  }

  /** A response iterable or byte source is exhausted: the call ends with OK and the trailer. */
  finishResponses(): void {
    try {
      if (this.done) return;
      const trailerBlock = this.okTrailer();
      if (trailerBlock === null) return;
      this.finish();
      if (trailerBlock === undefined) this.stream.endClean();
      else this.stream.end(Status.OK, '', trailerBlock);
    } finally {
      this.release();
    }
  }

  onHandlerError(error: unknown): void {
    try {
      if (!this.done) {
        // only the message travels: never a stack trace or a file path
        const rpcError = RpcError.from(error);
        this.fail(rpcError.code, rpcError.rawMessage, rpcError.metadata);
      }
    } finally {
      this.release();
    }
  }

  private respond(value: unknown): void {
    let bytes: Uint8Array;
    try {
      bytes = this.encodeResponse(value);
    } catch (error) {
      const rpcError = error as RpcError;
      this.fail(rpcError.code, rpcError.rawMessage);
      return;
    }
    const trailerBlock = this.okTrailer();
    if (trailerBlock === null) return;
    this.finish();
    if (trailerBlock === undefined) {
      this.stream.sendMessage(bytes, true);
    } else {
      this.stream.sendMessage(bytes);
      this.stream.end(Status.OK, '', trailerBlock);
    }
  }

  /** One response of a ResponsePump, sent: false once the stream's queue is past its high-water mark. */
  sendResponse(item: unknown): boolean {
    return this.stream.sendMessage(this.encodeResponse(item));
  }

  /** One response, encoded and checked against the caller's limit; throws an RpcError. */
  private encodeResponse(value: unknown): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = this.descriptor.def.codec.encode(value);
    } catch (error) {
      if (error instanceof CodecLimitError) throw new RpcError(Status.RESOURCE_EXHAUSTED, `the response ${error.message}`);
      throw new RpcError(Status.INTERNAL, `could not encode the response: ${(error as Error).message}`);
    }
    const limit = this.host.core.peerMaxMessageBytes;
    if (bytes.length > limit) {
      const message = `the response of ${bytes.length} bytes exceeds the caller's maxMessageBytes of ${limit}; raise maxMessageBytes on both sides for larger messages`;
      throw new RpcError(Status.RESOURCE_EXHAUSTED, message);
    }
    return bytes;
  }

  /** The trailer of a success; null once the call has failed because the handler's trailer metadata is invalid. */
  private okTrailer(): Uint8Array | undefined | null {
    try {
      return this.encodeTrailer(this.trailerMetadata);
    } catch (error) {
      this.fail(Status.INTERNAL, `the handler set invalid trailer metadata: ${(error as Error).message}`);
      return null;
    }
  }

  /**
   * Ends the call with an error status, as the trailer after what was already sent (so the caller reads the responses
   * before the error); a caller still sending is then reset (resetAfterEnd).
   */
  private fail(status: Status, message: string, metadata?: Metadata): void {
    if (this.done) return;
    const error = new RpcError(status, message);
    this.finish(error);
    this.abort = abortLazily(this.abort, error);
    this.sender?.fail(error);
    let trailerBlock: Uint8Array | undefined;
    try {
      trailerBlock = this.encodeTrailer({ ...this.trailerMetadata, ...metadata });
    } catch {
      trailerBlock = undefined; // the error status matters more than metadata that cannot be encoded
    }
    this.stream.end(status, message, trailerBlock);
    if (!this.running) this.release();
  }

  private cancel(reason: RpcError): void {
    if (this.done) return;
    this.finish(reason);
    this.abort = abortLazily(this.abort, reason);
    this.sender?.fail(reason);
    this.requests?.fail(reason);
    this.stream.reset(reason.code, reason.rawMessage);
    if (!this.running) this.release();
  }

  /** For the bulk watchdog: an upload is stuck while the body has room and nothing arrives; a download while our bytes wait for credit. */
  waitingOnPeer(): boolean {
    if (this.kind !== 'upload') return this.stream.sendBlocked;
    return this.held === undefined && !this.stream.remoteDone && (this.requests === undefined || this.requests.pending === 0);
  }

  progressStalled(error: RpcError): void {
    this.cancel(error);
  }

  /** The deadline the caller gave passed: the handler is told (ctx.signal) and the caller gets DEADLINE_EXCEEDED. */
  onDeadline(): void {
    this.timer = undefined;
    this.cancel(new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the handler finished'));
  }

  /** The outcome is decided; a handler still reading requests gets `reason`, or CANCELLED when it succeeded. */
  private finish(reason?: RpcError): void {
    if (!this.done) this.counter.finish(reason === undefined ? Status.OK : reason.code);
    this.done = true;
    this.held?.drop();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.watchdog?.stop();
    // what still arrives is dropped and credited, not read
    this.requests?.fail(reason ?? new RpcError(Status.CANCELLED, 'the call is over'));
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    if (this.drainController !== undefined) this.host.drain.unwatch(this);
    this.host.core.release(this.stream);
  }

  private encodeTrailer(metadata: Metadata | undefined): Uint8Array | undefined {
    if (metadata === undefined || Object.keys(metadata).length === 0) return undefined;
    return encodeMetadata(metadata, this.host.core.options);
  }
}
