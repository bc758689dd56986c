/**
 * The handler side of a unary call: collects exactly one request, validates it, runs the handler with its context,
 * and sends the response or the error as the stream's trailer. Enforces the deadline it was given. The stream's
 * concurrency slot is released only once the handler has returned, even when the call was cancelled earlier
 * (the Rapid Reset lesson).
 */
import { Status } from '../wire/constants.js';
import { encodeMetadata, type Metadata } from '../wire/metadata.js';
import type { Stream, StreamEvents, StreamTrailer } from '../session/stream.js';
import type { SessionPeer } from '../session/session.js';
import type { CallContext } from './context.js';
import { LazySignal } from './context.js';
import { MAX_TIMER_MS } from './client-call.js';
import { RpcError } from './rpc-error.js';
import type { RpcSession } from './rpc-session.js';
import { validateThen, type ValidationResult } from './schema.js';
import type { MethodDescriptor } from './service.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- handlers are typed at serve(); here they are opaque
export type AnyHandler = (request: any, ctx: CallContext) => unknown;

export class ServerUnaryCall implements StreamEvents, CallContext {
  readonly deadline: number | undefined;
  private readonly abort = new LazySignal();
  private request: unknown;
  private hasRequest = false;
  /** True from the start of input validation until the handler has settled: the slot stays held meanwhile. */
  private running = false;
  /** True once the outcome is decided (response sent, error sent, or aborted); later results are dropped. */
  private done = false;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private trailerMetadata: Metadata | undefined;

  constructor(
    readonly session: RpcSession,
    private readonly stream: Stream,
    private readonly descriptor: MethodDescriptor,
    private readonly handler: AnyHandler,
    readonly metadata: Metadata,
    deadlineMs: number,
  ) {
    if (deadlineMs > 0) {
      this.deadline = Date.now() + deadlineMs;
      if (deadlineMs <= MAX_TIMER_MS) this.timer = setTimeout(() => this.onDeadline(), deadlineMs);
    }
  }

  get method(): string {
    return this.descriptor.path;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get peer(): SessionPeer {
    return this.session.peer;
  }

  get trailer(): Metadata {
    return (this.trailerMetadata ??= {});
  }

  onMessage(bytes: Uint8Array): void {
    if (this.hasRequest) {
      this.fail(Status.UNIMPLEMENTED, `${this.method} is unary but received more than one request message`);
      return;
    }
    try {
      this.request = this.descriptor.def.codec.decode(bytes);
      this.hasRequest = true;
    } catch (error) {
      this.fail(Status.INTERNAL, `could not decode the request: ${(error as Error).message}`);
    }
  }

  onEnd(trailer: StreamTrailer): void {
    if (this.done) return;
    if (trailer.status !== Status.OK) {
      this.cancel(new RpcError(Status.CANCELLED, `the caller ended the call: ${trailer.message}`));
      return;
    }
    if (!this.hasRequest) {
      this.fail(Status.UNIMPLEMENTED, `${this.method} is unary but received no request message`);
      return;
    }
    const schema = this.descriptor.def.input;
    if (schema === undefined) {
      this.invoke(this.request);
      return;
    }
    this.running = true;
    validateThen(schema, this.request, (result) => this.onValidated(result));
  }

  onReset(status: Status, message: string): void {
    // the caller cancelled, its deadline passed, or the connection is gone: the handler must stop
    const code = status === Status.DEADLINE_EXCEEDED ? Status.DEADLINE_EXCEEDED : status === Status.UNAVAILABLE ? Status.UNAVAILABLE : Status.CANCELLED;
    this.cancel(new RpcError(code, message));
  }

  private onValidated(result: ValidationResult): void {
    if (result.ok && !this.done) {
      this.invoke(result.value);
      return;
    }
    if (!result.ok && result.crashed) this.fail(Status.INTERNAL, `input validation failed to run: ${result.message}`);
    else if (!result.ok) this.fail(Status.INVALID_ARGUMENT, `invalid request: ${result.message}`);
    this.release(); // the validator has finished and no handler will run
  }

  private invoke(request: unknown): void {
    this.running = true;
    let out: unknown;
    try {
      out = this.handler(request, this);
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
    try {
      if (!this.done) this.respond(value);
    } finally {
      this.release();
    }
  }

  private onHandlerError(error: unknown): void {
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
      bytes = this.descriptor.def.codec.encode(value);
    } catch (error) {
      this.fail(Status.INTERNAL, `could not encode the response: ${(error as Error).message}`);
      return;
    }
    const limit = this.session.core.peerMaxMessageBytes;
    if (bytes.length > limit) {
      this.fail(Status.RESOURCE_EXHAUSTED, `the response of ${bytes.length} bytes exceeds the caller's limit of ${limit} bytes`);
      return;
    }
    let trailerBlock: Uint8Array | undefined;
    try {
      trailerBlock = this.encodeTrailer(this.trailerMetadata);
    } catch (error) {
      this.fail(Status.INTERNAL, `the handler set invalid trailer metadata: ${(error as Error).message}`);
      return;
    }
    this.finish();
    if (trailerBlock === undefined) {
      this.stream.sendMessage(bytes, true);
    } else {
      this.stream.sendMessage(bytes);
      this.stream.end(Status.OK, '', trailerBlock);
    }
  }

  /** Ends the call with an error status (as the trailer when the caller is done sending, else as a RESET). */
  private fail(status: Status, message: string, metadata?: Metadata): void {
    if (this.done) return;
    this.finish();
    this.abort.abort(new RpcError(status, message));
    if (!this.stream.remoteDone) {
      this.stream.reset(status, message);
    } else {
      let trailerBlock: Uint8Array | undefined;
      try {
        trailerBlock = this.encodeTrailer({ ...this.trailerMetadata, ...metadata });
      } catch {
        trailerBlock = undefined; // the error status matters more than metadata that cannot be encoded
      }
      this.stream.end(status, message, trailerBlock);
    }
    if (!this.running) this.release();
  }

  private cancel(reason: RpcError): void {
    if (this.done) return;
    this.finish();
    this.abort.abort(reason);
    this.stream.reset(reason.code, reason.rawMessage);
    if (!this.running) this.release();
  }

  private onDeadline(): void {
    this.timer = undefined;
    this.cancel(new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the handler finished'));
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.session.core.release(this.stream);
  }

  private encodeTrailer(metadata: Metadata | undefined): Uint8Array | undefined {
    if (metadata === undefined || Object.keys(metadata).length === 0) return undefined;
    return encodeMetadata(metadata, this.session.core.options);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
