/**
 * The one error class for calls: a gRPC-style Status, a message prefixed with the status name, the trailer metadata
 * and a cause. `RpcError.from` turns anything thrown into one.
 */
import { Status, statusName } from '../wire/constants.js';
import type { Metadata } from '../wire/metadata.js';

export interface RpcErrorOptions {
  /** Trailer metadata sent with (or received with) the error. */
  metadata?: Metadata;
  cause?: unknown;
  /** True when the call provably never reached a handler, so it is safe to retry. */
  retrySafe?: boolean;
}

export class RpcError extends Error {
  override readonly name = 'RpcError';
  /** The status code; `Status[code]`'s name is also at the start of `message`. */
  readonly code: Status;
  /** The message without the status prefix, as it travels on the wire. */
  readonly rawMessage: string;
  readonly metadata: Metadata;
  readonly retrySafe: boolean;

  constructor(code: Status, message: string, options: RpcErrorOptions = {}) {
    super(`${statusName(code)}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rawMessage = message;
    this.metadata = options.metadata ?? {};
    this.retrySafe = options.retrySafe ?? false;
  }

  /**
   * Turns anything thrown into an RpcError: an RpcError stays itself, an AbortError becomes CANCELLED, a
   * TimeoutError (AbortSignal.timeout) DEADLINE_EXCEEDED, anything else `fallback` (UNKNOWN) with its message only.
   */
  static from(error: unknown, fallback: Status = Status.UNKNOWN): RpcError {
    if (error instanceof RpcError) return error;
    if (error instanceof Error || isDomLikeError(error)) {
      const { name, message } = error as Error;
      if (name === 'AbortError') return new RpcError(Status.CANCELLED, message || 'the call was cancelled', { cause: error });
      if (name === 'TimeoutError') return new RpcError(Status.DEADLINE_EXCEEDED, message || 'the deadline passed', { cause: error });
      return new RpcError(fallback, message, { cause: error });
    }
    return new RpcError(fallback, typeof error === 'string' ? error : 'unknown error', { cause: error });
  }
}

function isDomLikeError(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { name?: unknown }).name === 'string' && 'message' in value;
}
