/**
 * GOAWAY both ways. Ours names the last of the peer's streams we took and why we stop: NO_ERROR for a graceful close,
 * or the code and message of the error that failed the session. The peer's names the last of our streams it took:
 * those above it were never processed (safe to retry elsewhere), and a code other than NO_ERROR is a connection error.
 * Knows nothing of the session's phases: the session decides whether to drain or to fail.
 */
import { ConnectionCode, Status, connectionCodeName } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { decodeGoaway, encodeGoaway } from '../wire/payloads.js';
import { AdmissionError, SessionError } from './errors.js';
import type { Stream } from './stream.js';

/**
 * Our GOAWAY when the session fails: a ProtocolError's code and message (a refusal's reason only, not what our log
 * says about it); INTERNAL_ERROR for any other error.
 */
export function failureGoaway(lastAcceptedStreamId: number, error: Error | undefined): Uint8Array {
  if (error instanceof AdmissionError) return encodeGoaway(lastAcceptedStreamId, error.connectionCode, error.reason);
  if (error instanceof ProtocolError) return encodeGoaway(lastAcceptedStreamId, error.connectionCode, error.message);
  if (error) return encodeGoaway(lastAcceptedStreamId, ConnectionCode.INTERNAL_ERROR, 'internal error');
  return encodeGoaway(lastAcceptedStreamId, ConnectionCode.NO_ERROR, 'closing');
}

/** What the peer's GOAWAY said, once one arrived. */
/**
 * GOAWAY frames a peer may send on one connection: one, or two for a two-phase shutdown, and a few to spare. Each one
 * after the first may only narrow what the first said; more than this is a flood (each costs a look at every stream).
 */
export const MAX_PEER_GOAWAYS = 8;

export class PeerGoaway {
  /** The message of the peer's GOAWAY (why it closed, e.g. "duplicate connection"). */
  message: string | undefined;
  /** The last of our streams the peer took; -1 until its GOAWAY arrives. */
  private lastStreamId = -1;
  private count = 0;
  /** Set by receive(): this GOAWAY was the first, or lowered the last stream id (streams above it need failing). */
  narrowed = false;

  /** True once the peer's GOAWAY has arrived: it takes no more of our streams. */
  get received(): boolean {
    return this.lastStreamId >= 0;
  }

  /**
   * Reads the peer's GOAWAY. Returns the connection error it reports (a code other than NO_ERROR), or undefined when
   * the peer closes gracefully. Throws ProtocolError for a malformed payload.
   */
  receive(payload: Uint8Array, inHandshake = false): SessionError | undefined {
    let goaway;
    try {
      goaway = decodeGoaway(payload);
    } catch (error) {
      throw new ProtocolError(ProtocolErrorCode.MALFORMED_FRAME, (error as Error).message);
    }
    if (++this.count > MAX_PEER_GOAWAYS) {
      throw new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, `GOAWAY flood: more than ${MAX_PEER_GOAWAYS} GOAWAY frames on one connection`);
    }
    this.message = goaway.message;
    // a later GOAWAY may narrow what an earlier one promised, never widen it (as in HTTP/2)
    const last = this.lastStreamId < 0 ? goaway.lastStreamId : Math.min(this.lastStreamId, goaway.lastStreamId);
    this.narrowed = last !== this.lastStreamId;
    this.lastStreamId = last;
    if (goaway.code === ConnectionCode.NO_ERROR) return undefined;
    return peerError(goaway.code, goaway.message, inHandshake);
  }

  /** True for a stream of ours the peer's GOAWAY says it never took: nothing of it was processed. */
  unprocessed(stream: Stream): boolean {
    return stream.outbound && this.lastStreamId >= 0 && stream.id > this.lastStreamId;
  }
}

/**
 * The error a GOAWAY with `code` reports. A refusal keeps its meaning, so that a dialer refused instead of answered
 * learns why: UNAUTHENTICATED (our credentials), PERMISSION_DENIED (who we are), FAILED_PRECONDITION (no common
 * protocol version: the acceptor refuses before any HELLO of its own). Anything else is UNAVAILABLE, retry-safe when
 * it came `inHandshake` (no call was sent yet; e.g. INTERNAL_ERROR: the server could not check our credentials).
 */
function peerError(code: number, message: string, inHandshake: boolean): SessionError {
  const why = message === '' ? 'no reason given' : message;
  switch (code) {
    case ConnectionCode.UNAUTHENTICATED:
      return new SessionError(Status.UNAUTHENTICATED, `the peer refused our credentials: ${why}`);
    case ConnectionCode.REFUSED:
      return new SessionError(Status.PERMISSION_DENIED, `the peer refused us: ${why}`);
    case ConnectionCode.VERSION_MISMATCH:
      return new SessionError(Status.FAILED_PRECONDITION, `the peer closed the connection: VERSION_MISMATCH: ${why}`);
    default:
      return new SessionError(Status.UNAVAILABLE, `the peer closed the connection: ${connectionCodeName(code)}${message ? `: ${message}` : ''}`, inHandshake);
  }
}
