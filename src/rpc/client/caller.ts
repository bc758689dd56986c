/**
 * The seam under every typed client: a Caller starts one call of a given kind and returns what the caller gets back
 * (a promise, a response stream, a bidi handle). SessionCaller starts calls on one core session; a channel or a mesh
 * peer wraps the callers of its sessions (pick a connection, wait for one, retry once) behind the same interface, so
 * the typed-client builder and the interceptor chain above it are the same everywhere.
 */
import type { Session } from '../../session/session.js';
import type { ByteStream, MessageStream } from '../inbox.js';
import type { ByteSource } from '../sender.js';
import type { CallCounters } from '../call-stats.js';
import type { MethodDescriptor } from '../service.js';
import { callBidi, type BidiCall } from './bidi-call.js';
import type { CallOptions } from './call-options.js';
import { callClientStream, callDownload, callServerStream, callUpload } from './stream-call.js';
import { callUnary } from './unary-call.js';

/** Starts calls, one method per kind; nothing here throws: a call that cannot start fails in what it returns. */
export interface Caller {
  unary(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown>;
  serverStream(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): MessageStream<unknown>;
  clientStream(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown>, options: CallOptions | undefined): Promise<unknown>;
  /** `requests`, when given, drive the call's sending side (see BidiCall). */
  bidi(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown> | undefined, options: CallOptions | undefined): BidiCall<unknown, unknown>;
  upload(method: MethodDescriptor, request: unknown, body: ByteSource, options: CallOptions | undefined): Promise<unknown>;
  download(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): ByteStream;
}

/** @internal Calls on one connection (the core session's type stays out of the published declarations users reach). */
export class SessionCaller implements Caller {
  constructor(
    private readonly core: Session,
    /** Where the calls made here are counted (call-stats.ts). */
    private readonly calls: CallCounters,
  ) {}

  unary(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): Promise<unknown> {
    return callUnary(this.core, this.calls.madeTo(method), method, request, options);
  }

  serverStream(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): MessageStream<unknown> {
    return callServerStream(this.core, this.calls.madeTo(method), method, request, options);
  }

  clientStream(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown>, options: CallOptions | undefined): Promise<unknown> {
    return callClientStream(this.core, this.calls.madeTo(method), method, requests, options);
  }

  bidi(method: MethodDescriptor, requests: Iterable<unknown> | AsyncIterable<unknown> | undefined, options: CallOptions | undefined): BidiCall<unknown, unknown> {
    return callBidi(this.core, this.calls.madeTo(method), method, requests, options);
  }

  upload(method: MethodDescriptor, request: unknown, body: ByteSource, options: CallOptions | undefined): Promise<unknown> {
    return callUpload(this.core, this.calls.madeTo(method), method, request, body, options);
  }

  download(method: MethodDescriptor, request: unknown, options: CallOptions | undefined): ByteStream {
    return callDownload(this.core, this.calls.madeTo(method), method, request, options);
  }
}
