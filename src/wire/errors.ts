/**
 * Typed errors for bytes that break the protocol. Every code is documented once, in docs/PROTOCOL.md
 * ("Error codes"); each maps to the GOAWAY code the connection is closed with.
 */
import { ConnectionCode } from './constants.js';

/** Stable string codes for connection-level failures, in the style of ws's `WS_ERR_*`. */
export const ProtocolErrorCode = {
  /** A frame declared a payload longer than the receiver's limit. */
  FRAME_SIZE: 'GW_ERR_FRAME_SIZE',
  /** A frame type below 0x80 that this version does not know. */
  UNKNOWN_FRAME_TYPE: 'GW_ERR_UNKNOWN_FRAME_TYPE',
  /** A frame whose payload does not have the shape its type requires. */
  MALFORMED_FRAME: 'GW_ERR_MALFORMED_FRAME',
  /** The peer broke the WebSocket binding: a text message, or a WebSocket frame RFC 6455 forbids. */
  WEBSOCKET: 'GW_ERR_WEBSOCKET',
  /** The first frame was not a valid HELLO, or HELLO came twice. */
  BAD_HANDSHAKE: 'GW_ERR_BAD_HANDSHAKE',
  /** The peer speaks no protocol version we speak. */
  VERSION_MISMATCH: 'GW_ERR_VERSION_MISMATCH',
  /** The peer did not finish the handshake in time. */
  HANDSHAKE_TIMEOUT: 'GW_ERR_HANDSHAKE_TIMEOUT',
  /** A stream id with the wrong parity, not increasing, reserved bit set, or a stream frame on stream 0. */
  BAD_STREAM_ID: 'GW_ERR_BAD_STREAM_ID',
  /** A frame for a stream that was never opened. */
  STREAM_NOT_OPEN: 'GW_ERR_STREAM_NOT_OPEN',
  /** Data beyond granted credit, a zero credit, or credit pushing a window past 2^31-1. */
  FLOW_CONTROL: 'GW_ERR_FLOW_CONTROL',
  /** The peer sent DATA or END on a stream after it had ended its side of that stream. */
  STREAM_STATE: 'GW_ERR_STREAM_STATE',
  /**
   * This side failed, never blamed on the peer: this implementation while handling a frame (a bug here), or the
   * application's check of a dialer (auth.verify, admit) threw.
   */
  INTERNAL: 'GW_ERR_INTERNAL',
  /** The peer made us do too much work for nothing (floods). */
  ENHANCE_YOUR_CALM: 'GW_ERR_ENHANCE_YOUR_CALM',
  /** A frame started arriving and did not complete within the receiver's frameTimeoutMs (a slowloris). */
  FRAME_TIMEOUT: 'GW_ERR_FRAME_TIMEOUT',
  /** The peer read nothing we sent for writeStallTimeoutMs while we had frames for it. */
  WRITE_STALL: 'GW_ERR_WRITE_STALL',
  /** We refused the dialer's credentials (its AUTH_TOKEN is missing or wrong). */
  UNAUTHENTICATED: 'GW_ERR_UNAUTHENTICATED',
  /** We refused the peer for who it is (the admission check: not a member of the mesh, not the node we dialed...). */
  REFUSED: 'GW_ERR_REFUSED',
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

const goawayCodeOf: Record<ProtocolErrorCode, ConnectionCode> = {
  GW_ERR_FRAME_SIZE: ConnectionCode.FRAME_SIZE_ERROR,
  GW_ERR_UNKNOWN_FRAME_TYPE: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_MALFORMED_FRAME: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_WEBSOCKET: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_BAD_HANDSHAKE: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_VERSION_MISMATCH: ConnectionCode.VERSION_MISMATCH,
  GW_ERR_HANDSHAKE_TIMEOUT: ConnectionCode.HANDSHAKE_TIMEOUT,
  GW_ERR_BAD_STREAM_ID: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_STREAM_NOT_OPEN: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_FLOW_CONTROL: ConnectionCode.FLOW_CONTROL_ERROR,
  GW_ERR_STREAM_STATE: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_INTERNAL: ConnectionCode.INTERNAL_ERROR,
  GW_ERR_ENHANCE_YOUR_CALM: ConnectionCode.ENHANCE_YOUR_CALM,
  // the peer broke the rule that a frame it starts completes in time (PROTOCOL.md §10b): no new GOAWAY code needed
  GW_ERR_FRAME_TIMEOUT: ConnectionCode.PROTOCOL_ERROR,
  GW_ERR_WRITE_STALL: ConnectionCode.ENHANCE_YOUR_CALM,
  GW_ERR_UNAUTHENTICATED: ConnectionCode.UNAUTHENTICATED,
  GW_ERR_REFUSED: ConnectionCode.REFUSED,
};

/** A violation of docs/PROTOCOL.md that ends the connection. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  /** The GOAWAY code the connection is closed with. */
  readonly connectionCode: ConnectionCode;

  constructor(code: ProtocolErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.connectionCode = goawayCodeOf[code];
  }
}

/** Raised inside payload parsers; the caller decides whether it is a stream or a connection error. */
export class MalformedPayloadError extends Error {
  override readonly name = 'MalformedPayloadError';
}
