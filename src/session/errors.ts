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
   * who it is may not use this connection (GOAWAY REFUSED). UNAVAILABLE: the check could not run (it threw: a backend
   * down), which says nothing about the peer (GOAWAY INTERNAL_ERROR, which a dialer reports as UNAVAILABLE).
   */
  readonly status?: typeof Status.UNAUTHENTICATED | typeof Status.PERMISSION_DENIED | typeof Status.UNAVAILABLE;
  /** Written in our log after the reason, never told to the peer (why a check failed to run). */
  readonly detail?: string;
}

/** Each refusal's status, as the code in our log (and through it the GOAWAY code). */
const refusalCodeOf = {
  [Status.UNAUTHENTICATED]: ProtocolErrorCode.UNAUTHENTICATED,
  [Status.PERMISSION_DENIED]: ProtocolErrorCode.REFUSED,
  [Status.UNAVAILABLE]: ProtocolErrorCode.INTERNAL,
} as const;

/**
 * The connection ends because we refused the peer (Refusal): not a protocol violation, but it takes the same path,
 * with a stable code (GW_ERR_UNAUTHENTICATED, GW_ERR_REFUSED; GW_ERR_INTERNAL for a check that could not run) and a
 * GOAWAY that tells the peer the reason only.
 */
export class AdmissionError extends ProtocolError {
  /** The status our side's `ready` rejects with. */
  readonly status: Status;
  /** What the peer is told. */
  readonly reason: string;

  constructor(refusal: Refusal) {
    const status = refusal.status ?? Status.PERMISSION_DENIED;
    const detail = refusal.detail === undefined ? '' : ` (${refusal.detail})`;
    super(refusalCodeOf[status], `${refusal.reason}${detail}`);
    this.status = status;
    this.reason = refusal.reason;
  }
}

/**
 * A check of the peer (`what`: "admit", "auth.verify") that threw or rejected: the peer is told `reason` and may retry
 * (UNAVAILABLE: the failure says nothing about it); our log says what was thrown. With `showMessage` false (a check
 * given a secret, whose message may hold it in any encoding) only the thrown error's name and code are logged.
 */
export function checkFailed(thrown: unknown, what: string, reason: string, showMessage: boolean): Refusal {
  let shown: string;
  if (!(thrown instanceof Error)) shown = showMessage ? String(thrown) : `a ${thrown === null ? 'null' : typeof thrown}`;
  else if (showMessage) shown = `${thrown.name}: ${thrown.message}`;
  else {
    const code = (thrown as { code?: unknown }).code;
    const name = IDENTIFIER.test(thrown.name) ? thrown.name : 'an Error';
    shown = typeof code === 'string' && IDENTIFIER.test(code) ? `${name} (${code})` : name;
  }
  return { status: Status.UNAVAILABLE, reason, detail: `${what} threw ${shown}` };
}

/** What an error's name or code looks like (ECONNREFUSED, TimeoutError): anything else is not logged. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

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
