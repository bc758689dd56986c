/**
 * What a caller may say about one call: cancellation, time, metadata, the trailer callback, and (for channels and
 * mesh peers) whether to wait for a connection.
 */
import type { Metadata } from '../../wire/metadata.js';

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
