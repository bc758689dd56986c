/**
 * The caller side of a unary call: encodes the request, opens the stream, and settles exactly once: with the
 * response, with the peer's error status, with CANCELLED when the caller's signal aborts, or with DEADLINE_EXCEEDED
 * when the caller's own timer fires (so the caller never waits past its deadline on the peer's word).
 */
import { Status } from '../wire/constants.js';
import { encodeMetadata, MetadataLimitError, type Metadata } from '../wire/metadata.js';
import { SessionError, type Session } from '../session/session.js';
import type { Stream, StreamEvents, StreamTrailer } from '../session/stream.js';
import { budgetOf, deadlineTimer, expired, wireDeadlineMs, type DeadlineWatcher } from './deadline.js';
import { RpcError } from './rpc-error.js';
import { validateThen } from './schema.js';
import type { MethodDescriptor } from './service.js';

export interface CallOptions {
  /** Aborting it cancels the call: the caller gets CANCELLED at once and the handler's ctx.signal fires. */
  signal?: AbortSignal;
  /** Time budget for the call in ms; sent to the handler as a relative deadline. */
  timeoutMs?: number;
  /** Absolute deadline (a Date or `Date.now()` timestamp); the earlier of this and timeoutMs wins. */
  deadline?: Date | number;
  /** Request metadata: lower-case keys, string or Uint8Array values. */
  metadata?: Metadata;
  /** Receives the trailer metadata of a successful call. */
  onTrailer?: (metadata: Metadata) => void;
  /**
   * Channels and mesh peers only (a session is already connected): wait for a connection until the deadline or the
   * signal, instead of failing at once with UNAVAILABLE while the link is down. Default false (fail fast).
   */
  waitForReady?: boolean;
  /** Upload and download only: fail with DEADLINE_EXCEEDED when the bytes stop moving for this long while waiting on the peer. Default: the session's progressTimeoutMs (60 000); 0 disables. */
  progressTimeoutMs?: number;
}

/**
 * Everything a call checks before it opens its stream: the signal, the deadline, the request metadata. Returns the
 * open stream and the time budget, or the error the call fails with (nothing was sent, so it is retry-safe).
 */
export function openCall(
  core: Session,
  descriptor: MethodDescriptor,
  options: CallOptions | undefined,
  window?: number,
): { stream: Stream; budget: number | undefined } | RpcError {
  const signal = options?.signal;
  if (signal?.aborted) return abortError(signal);
  const budget = budgetOf(options);
  if (expired(budget)) {
    return new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline had passed before the call started', { retrySafe: true });
  }
  let metadataBlock: Uint8Array | undefined;
  try {
    if (options?.metadata !== undefined) metadataBlock = encodeMetadata(options.metadata, core.options);
  } catch (error) {
    const status = error instanceof MetadataLimitError ? Status.RESOURCE_EXHAUSTED : Status.INTERNAL;
    return new RpcError(status, `could not send the request: ${(error as Error).message}`, { cause: error, retrySafe: true });
  }
  try {
    return { stream: core.openStream(descriptor.pathBytes, { deadlineMs: wireDeadlineMs(budget), metadataBlock, window }), budget };
  } catch (error) {
    if (error instanceof SessionError) return new RpcError(error.status, error.message, { retrySafe: error.retrySafe });
    throw error;
  }
}

/** Encodes a request message and checks it against the peer's limit; the error is retry-safe (nothing was sent). */
export function encodeRequest(core: Session, descriptor: MethodDescriptor, request: unknown): Uint8Array | RpcError {
  let bytes: Uint8Array;
  try {
    bytes = descriptor.def.codec.encode(request);
  } catch (error) {
    return new RpcError(Status.INTERNAL, `could not send the request: ${(error as Error).message}`, { cause: error, retrySafe: true });
  }
  const limit = core.peerMaxMessageBytes;
  if (bytes.length > limit) {
    return new RpcError(Status.RESOURCE_EXHAUSTED, `the request of ${bytes.length} bytes exceeds the peer's limit of ${limit} bytes`, { retrySafe: true });
  }
  return bytes;
}

export function callUnary(core: Session, descriptor: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown> {
  const bytes = encodeRequest(core, descriptor, request);
  if (bytes instanceof RpcError) return Promise.reject(bytes);
  const opened = openCall(core, descriptor, options);
  if (opened instanceof RpcError) return Promise.reject(opened);
  const call = new ClientUnaryCall(opened.stream, descriptor, options, opened.budget);
  opened.stream.events = call;
  opened.stream.sendMessage(bytes, true);
  return call.promise;
}

/**
 * The end of a call that returns one response, once END OK has arrived with it: passes the trailer to `onTrailer`,
 * runs the output schema, then settles. User code here runs on the connection's read path: what it throws fails
 * this call only, never the connection.
 */
export function completeWithResponse(
  descriptor: MethodDescriptor,
  options: CallOptions | undefined,
  trailer: StreamTrailer,
  response: unknown,
  succeed: (value: unknown) => void,
  fail: (error: RpcError) => void,
): void {
  const trailerError = deliverTrailer(options, trailer);
  if (trailerError !== undefined) {
    fail(trailerError);
    return;
  }
  const schema = descriptor.def.output;
  if (schema === undefined) {
    succeed(response);
    return;
  }
  validateThen(schema, response, (result) => {
    if (result.ok) succeed(result.value);
    else fail(new RpcError(Status.INTERNAL, result.crashed ? `output validation failed to run: ${result.message}` : `invalid response: ${result.message}`));
  });
}

/** Hands a successful call's trailer to `onTrailer`; what that user code throws comes back as the call's error. */
export function deliverTrailer(options: CallOptions | undefined, trailer: StreamTrailer): RpcError | undefined {
  try {
    options?.onTrailer?.(trailer.metadata);
    return undefined;
  } catch (error) {
    return new RpcError(Status.INTERNAL, `onTrailer threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}

export function abortError(signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  if (reason instanceof RpcError) return reason;
  const error = RpcError.from(reason, Status.CANCELLED);
  return error.code === Status.DEADLINE_EXCEEDED ? error : new RpcError(Status.CANCELLED, 'the caller cancelled the call', { cause: reason });
}

/**
 * One 'abort' listener per signal, however many calls share it: a listener per call would trip Node's
 * MaxListenersExceededWarning as soon as eleven calls share one AbortController.
 */
export interface AbortWatcher {
  onAbort(signal: AbortSignal): void;
}

const callsBySignal = new WeakMap<AbortSignal, Set<AbortWatcher>>();

export function watchSignal(signal: AbortSignal, call: AbortWatcher): void {
  let calls = callsBySignal.get(signal);
  if (calls === undefined) {
    calls = new Set();
    callsBySignal.set(signal, calls);
    signal.addEventListener('abort', onSignalAbort, { once: true });
  }
  calls.add(call);
}

export function unwatchSignal(signal: AbortSignal, call: AbortWatcher): void {
  const calls = callsBySignal.get(signal);
  if (calls === undefined || !calls.delete(call) || calls.size > 0) return;
  callsBySignal.delete(signal);
  signal.removeEventListener('abort', onSignalAbort);
}

function onSignalAbort(this: AbortSignal): void {
  const calls = callsBySignal.get(this);
  callsBySignal.delete(this);
  if (calls !== undefined) for (const call of [...calls]) call.onAbort(this);
}

class ClientUnaryCall implements StreamEvents, AbortWatcher, DeadlineWatcher {
  readonly promise: Promise<unknown>;
  private resolve!: (value: unknown) => void;
  private reject!: (error: RpcError) => void;
  private response: unknown;
  private hasResponse = false;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: Stream,
    private readonly descriptor: MethodDescriptor,
    private readonly options: CallOptions | undefined,
    budget: number | undefined,
  ) {
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
      this.fail(new RpcError(Status.INTERNAL, `could not decode the response: ${(error as Error).message}`), Status.CANCELLED);
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
    this.settle(Status.CANCELLED, 'the call is already over');
    this.resolve(value);
  }

  /** Settles with `error`; the peer is told to stop with `resetStatus` if the stream is still open. */
  private fail(error: RpcError, resetStatus: Status = Status.CANCELLED): void {
    if (this.settled) return;
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
