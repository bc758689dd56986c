/**
 * The start of every client call: what it checks before its stream opens (signal, deadline, metadata), opening the
 * stream, and encoding a request message within the peer's limit. Every error here means nothing was sent, so it is
 * retry-safe.
 */
import { Status } from '../../wire/constants.js';
import { encodeMetadata, MetadataLimitError } from '../../wire/metadata.js';
import { SessionError } from '../../session/errors.js';
import type { Session } from '../../session/session.js';
import type { Stream } from '../../session/stream.js';
import { rpcErrorOf } from '../connection-error.js';
import { budgetOf, expired, wireDeadlineMs } from '../deadline.js';
import { CodecLimitError } from '../msgpack-budget.js';
import { RpcError } from '../rpc-error.js';
import type { MethodDescriptor } from '../service.js';
import { abortError } from './abort-watch.js';
import type { CallOptions } from './call-options.js';

/**
 * Everything a call checks before it opens its stream: the signal, progressTimeoutMs, the deadline, the request metadata. Returns the
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
  const progressTimeoutMs = options?.progressTimeoutMs;
  if (progressTimeoutMs !== undefined && !(typeof progressTimeoutMs === 'number' && progressTimeoutMs >= 0)) {
    const message = `progressTimeoutMs must be a number of ms, 0 or more (0 or Infinity: no progress timeout), got ${String(progressTimeoutMs)}`;
    return new RpcError(Status.INVALID_ARGUMENT, message, { retrySafe: true });
  }
  const budget = budgetOf(options);
  if (expired(budget)) {
    return new RpcError(Status.DEADLINE_EXCEEDED, 'the deadline had passed before the call started', { retrySafe: true });
  }
  let metadataBlock: Uint8Array | undefined;
  try {
    if (options?.metadata !== undefined) metadataBlock = encodeMetadata(options.metadata, core.options);
  } catch (error) {
    return metadataError(error);
  }
  try {
    return { stream: core.openStream(descriptor.pathBytes, { deadlineMs: wireDeadlineMs(budget), metadataBlock, window }), budget };
  } catch (error) {
    if (error instanceof SessionError) return rpcErrorOf(error);
    throw error;
  }
}

/**
 * Request metadata that could not be sent: over this side's limits is RESOURCE_EXHAUSTED; an invalid key or value is
 * the caller's mistake, INVALID_ARGUMENT, for every kind of call alike. A rejection rather than a TypeError thrown at
 * the call: metadata may be set by an interceptor, or encoded only once a channel has a connection, long after the
 * method function returned, and a call that cannot start always fails in what it returns.
 */
function metadataError(error: unknown): RpcError {
  const status = error instanceof MetadataLimitError ? Status.RESOURCE_EXHAUSTED : Status.INVALID_ARGUMENT;
  return new RpcError(status, `invalid request metadata: ${(error as Error).message}`, { cause: error, retrySafe: true });
}

/**
 * Encodes a request message and checks it against the peer's limit; the error is retry-safe (nothing was sent). A
 * value the method's codec refuses (a Map for json, a string for raw) is the caller's: INVALID_ARGUMENT; one over the
 * codec's budget (msgpack's maxElements) RESOURCE_EXHAUSTED, as the peer would answer it.
 */
export function encodeRequest(core: Session, descriptor: MethodDescriptor, request: unknown): Uint8Array | RpcError {
  let bytes: Uint8Array;
  const codec = descriptor.def.codec;
  try {
    bytes = codec.encode(request);
  } catch (error) {
    if (error instanceof CodecLimitError) return new RpcError(Status.RESOURCE_EXHAUSTED, `the request ${error.message}`, { cause: error, retrySafe: true });
    const message = `the request cannot be encoded with codec "${codec.name}": ${(error as Error)?.message ?? String(error)}`;
    return new RpcError(Status.INVALID_ARGUMENT, message, { cause: error, retrySafe: true });
  }
  const limit = core.peerMaxMessageBytes;
  if (bytes.length > limit) {
    const message = `the request of ${bytes.length} bytes exceeds the peer's maxMessageBytes of ${limit}; raise maxMessageBytes on both sides for larger messages`;
    return new RpcError(Status.RESOURCE_EXHAUSTED, message, { retrySafe: true });
  }
  return bytes;
}
