/**
 * The session's errors: SessionError (what callers see when a session cannot take or finish their stream), and how
 * failures while reading frames become a connection error or a stream's RESET. Knows nothing of calls or codecs.
 */
import { Status } from '../wire/constants.js';
import { MalformedPayloadError, ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { MetadataLimitError } from '../wire/metadata.js';

/** Raised to callers when the session cannot take new streams; carries a Status the rpc layer passes on. */
export class SessionError extends Error {
  override readonly name = 'SessionError';
  constructor(
    readonly status: Status,
    message: string,
    /** True when nothing was sent for this call, so it is safe to retry elsewhere. */
    readonly retrySafe = false,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Why a stream failed whose incoming message passed maxMessageBytes: names the option and says what to do. */
export function messageTooLargeMessage(atLeastBytes: number, limitBytes: number): string {
  return `a message of at least ${atLeastBytes} bytes exceeds the receiver's maxMessageBytes of ${limitBytes}; raise maxMessageBytes on both sides for larger messages`;
}

/** Why a stream failed whose partly received message did not fit the connection's reassembly budget. */
export function reassemblyBudgetMessage(limitBytes: number): string {
  return `partly received messages on this connection would exceed the receiver's maxReassemblyBytes of ${limitBytes}; raise maxReassemblyBytes (default: twice maxMessageBytes, at least 32 MiB) or send fewer large messages at once`;
}

/** Something other than a ProtocolError thrown while handling a frame: our bug, reported as GW_ERR_INTERNAL. */
export function internalError(error: unknown): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.INTERNAL, `failed to handle a frame: ${(error as Error)?.message ?? String(error)}`);
}

/** Maps a payload parse failure to the status and message a RESET carries. */
export function streamErrorOf(error: unknown, what: string): [Status, string] {
  if (error instanceof MetadataLimitError) return [Status.RESOURCE_EXHAUSTED, `${what}: ${error.message}`];
  if (error instanceof MalformedPayloadError) return [Status.INTERNAL, `malformed ${what}: ${error.message}`];
  return [Status.INTERNAL, `failed to read ${what}`];
}
