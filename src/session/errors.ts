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

/**
 * Why a peer is refused by the admission check, before any of its frames after its HELLO is handled: the reason it
 * is told, and what was wrong.
 */
export interface Refusal {
  /** Told to the peer (the GOAWAY's message) and written in our log: never a secret. */
  readonly reason: string;
  /**
   * UNAUTHENTICATED: its credentials are missing or wrong (GOAWAY UNAUTHENTICATED). PERMISSION_DENIED, the default:
   * who it is may not use this connection (GOAWAY REFUSED).
   */
  readonly status?: typeof Status.UNAUTHENTICATED | typeof Status.PERMISSION_DENIED;
  /** Written in our log after the reason, never told to the peer (why a check failed to run). */
  readonly detail?: string;
}

/**
 * The connection ends because we refused the peer (Refusal): not a protocol violation, but it takes the same path,
 * with a stable code (GW_ERR_UNAUTHENTICATED, GW_ERR_REFUSED) and a GOAWAY that tells the peer the reason only.
 */
export class AdmissionError extends ProtocolError {
  /** The status our side's `ready` rejects with. */
  readonly status: Status;
  /** What the peer is told. */
  readonly reason: string;

  constructor(refusal: Refusal) {
    const unauthenticated = refusal.status === Status.UNAUTHENTICATED;
    const detail = refusal.detail === undefined ? '' : ` (${refusal.detail})`;
    super(unauthenticated ? ProtocolErrorCode.UNAUTHENTICATED : ProtocolErrorCode.REFUSED, `${refusal.reason}${detail}`);
    this.status = unauthenticated ? Status.UNAUTHENTICATED : Status.PERMISSION_DENIED;
    this.reason = refusal.reason;
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
