/**
 * Every number that appears on the gridwire wire: frame types, flags, field sizes, protocol version, error codes and
 * the default limits. docs/PROTOCOL.md is the prose version of this file; change both together.
 * Knows nothing of sockets, timers or services.
 */

/** Bytes in the fixed frame header: type (1) + flags (1) + stream id (4) + payload length (4). */
export const FRAME_HEADER_BYTES = 1 + 1 + 4 + 4;

/** Frame types (byte 0 of the header). Types 0x80-0xFF are extension frames: a receiver that does not know one ignores it. */
export const FrameType = {
  HELLO: 0x01,
  OPEN: 0x02,
  DATA: 0x03,
  END: 0x04,
  RESET: 0x05,
  CREDIT: 0x06,
  PING: 0x07,
  GOAWAY: 0x08,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** The first type number a receiver may ignore when it does not know it. */
export const FIRST_EXTENSION_FRAME_TYPE = 0x80;

/** Flag bits (byte 1 of the header). Their meaning depends on the frame type; unknown bits are ignored. */
export const Flag = {
  /** DATA: this frame holds the last bytes of a message. */
  MESSAGE_END: 0x01,
  /** DATA: the sender's side of the stream ends cleanly here (status OK, no trailer metadata). */
  END_STREAM: 0x02,
  /** PING: this is the reply. */
  ACK: 0x01,
  /** RESET: the stream was refused before any handler saw it, so the call is safe to retry. */
  REFUSED: 0x01,
  /** CREDIT: the increment counts messages (the stream's message window), not bytes. */
  MESSAGES: 0x01,
} as const;

/** Magic bytes at the start of every HELLO payload: tells a gridwire peer from anything else on the port. */
export const HELLO_MAGIC = new Uint8Array([0x47, 0x52, 0x49, 0x44, 0x57, 0x49, 0x52, 0x45]); // "GRIDWIRE"

/** Protocol versions this implementation speaks. A peer whose range does not overlap ours is refused. */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 1;

/** Feature bits this implementation announces in HELLO (none yet; the setting exists so later ones can be negotiated). */
export const OUR_FEATURES = 0;

/** Identifiers of the HELLO settings (type-length-value entries; unknown ids are ignored). */
export const Setting = {
  /** u32: largest frame payload the sender of HELLO accepts. */
  MAX_FRAME_BYTES: 0x01,
  /** u32: receive window in bytes the sender of HELLO grants every new stream (OPEN may override for its own side). */
  INITIAL_STREAM_WINDOW: 0x02,
  /** u32: receive window in bytes the sender of HELLO grants the whole connection. */
  CONNECTION_WINDOW: 0x03,
  /** u32: how many streams the peer may have open towards the sender of HELLO at once. */
  MAX_CONCURRENT_STREAMS: 0x04,
  /** u32: largest message the sender of HELLO accepts (informative: lets the peer fail early). */
  MAX_MESSAGE_BYTES: 0x05,
  /** u32 >= 1: messages the sender of HELLO lets the peer send on every stream before granting more. */
  INITIAL_MESSAGE_WINDOW: 0x06,
  /** u32: feature bits the sender supports (none are defined in version 1; unknown bits are ignored). */
  FEATURES: 0x07,
  /** utf8: node name of the sender (may be empty). */
  NODE_NAME: 0x10,
  /** utf8: connection label, e.g. "control" or "data" (may be empty). */
  LABEL: 0x11,
  /**
   * bytes, 1..MAX_AUTH_TOKEN_BYTES: the dialer's credentials (its auth.token), opaque to the protocol. Only a dialer
   * sends it; an acceptor configured without auth ignores it, one with auth refuses a dialer without it.
   */
  AUTH_TOKEN: 0x12,
} as const;

/**
 * Largest AUTH_TOKEN a HELLO may carry. With it, the longest HELLO this implementation sends (nine settings, a node
 * name and a label of 255 bytes) is 8 + 5 + 7 x 8 + 2 x (4 + 255) + 4 + 2 048 = 2 639 bytes: within
 * PRE_HANDSHAKE_MAX_FRAME_BYTES, with room for settings a later version adds.
 */
export const MAX_AUTH_TOKEN_BYTES = 2048;

/** Codes carried by GOAWAY: why a connection ends. */
export const ConnectionCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  FRAME_SIZE_ERROR: 4,
  HANDSHAKE_TIMEOUT: 5,
  VERSION_MISMATCH: 6,
  ENHANCE_YOUR_CALM: 7,
  STREAM_IDS_EXHAUSTED: 8,
  /** The acceptor refused the dialer's credentials (AUTH_TOKEN missing or wrong), instead of answering with its HELLO. */
  UNAUTHENTICATED: 9,
  /**
   * The dialer's HELLO was refused for who it says it is (a mesh: not a member, not one of its lanes), instead of an
   * answering HELLO; or the dialer refused the acceptor's HELLO (not the node it meant to reach).
   */
  REFUSED: 10,
} as const;
export type ConnectionCode = (typeof ConnectionCode)[keyof typeof ConnectionCode];

/**
 * Messages of a graceful GOAWAY (NO_ERROR) that say the connection was healthy and the peer may reconnect at once
 * (PROTOCOL.md §10b): the acceptor retires it for being idle or old, not because anything went wrong.
 */
export const RetireReason = {
  IDLE: 'idle',
  MAX_AGE: 'max connection age',
} as const;

/** Call status codes, with gRPC's numbers and meanings. Travel in END and RESET frames. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

const statusNames = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, name]));
/** "DEADLINE_EXCEEDED" for 4; "STATUS_99" for a number outside the table. */
export function statusName(code: number): string {
  return statusNames.get(code) ?? `STATUS_${code}`;
}
export function isStatus(code: number): code is Status {
  return statusNames.has(code);
}

const connectionCodeNames = new Map<number, string>(Object.entries(ConnectionCode).map(([n, c]) => [c, n]));
export function connectionCodeName(code: number): string {
  return connectionCodeNames.get(code) ?? `CODE_${code}`;
}

/** Largest stream id; ids are u32 with the top bit reserved (must be 0). */
export const MAX_STREAM_ID = 0x7fff_ffff;
/** Largest flow-control window; a CREDIT that would push a window past it is a FLOW_CONTROL_ERROR. */
export const MAX_WINDOW = 0x7fff_ffff;
/** Largest relative deadline a frame can carry (u32 milliseconds, about 49 days). 0 means "no deadline". */
export const MAX_DEADLINE_MS = 0xffff_ffff;

/** Fixed byte sizes inside payloads. */
export const PING_PAYLOAD_BYTES = 8;
export const CREDIT_PAYLOAD_BYTES = 4;
export const MAX_METHOD_BYTES = 255;
export const MAX_METADATA_KEY_BYTES = 64;
/** Accounting overhead added per metadata entry, as HPACK does, so that many empty entries still cost something. */
export const METADATA_ENTRY_OVERHEAD = 32;
/** Status messages in END, RESET and GOAWAY are cut to this many bytes by the sender and refused above it. */
export const MAX_STATUS_MESSAGE_BYTES = 1024;

/** Limits that hold before the handshake has finished: HELLO must fit in this. */
export const PRE_HANDSHAKE_MAX_FRAME_BYTES = 4096;

/** Bounds a peer may announce in HELLO; values outside are a PROTOCOL_ERROR. */
export const MIN_MAX_FRAME_BYTES = 16 * 1024;
export const MAX_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Smallest DATA frame a sender writes that is not the rest of its message or chunk (PROTOCOL.md §6, "Minimum DATA
 * size"): it waits for more credit instead, so a peer granting a byte at a time cannot make us send 1-byte frames
 * (Data Dribble, CVE-2019-9511). Below it only when the receiver announced a smaller window.
 */
export const MIN_DATA_FRAME_BYTES = 1024;

/** Default limits (docs/PROTOCOL.md "Limits"; research/reliability.md §5 gives their provenance). */
export const DEFAULT_LIMITS = {
  maxFrameBytes: 64 * 1024,
  maxMessageBytes: 4 * 1024 * 1024,
  maxMetadataBytes: 8 * 1024,
  maxMetadataEntries: 64,
  initialStreamWindow: 256 * 1024,
  initialMessageWindow: 1024,
  bulkWindow: 256 * 1024,
  maxBulkWindow: 32 * 1024 * 1024,
  connectionWindow: 16 * 1024 * 1024,
  maxConcurrentStreams: 100,
  maxReassemblyBytes: 32 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
} as const;

/**
 * WebSocket binding (PROTOCOL.md §14): the largest binary message a sender writes, and exactly what a receiver accepts
 * (ws `maxPayload`; one more byte closes the connection). A frame of the default maximum size with its header fits in
 * one message; larger frames span messages, which carry no meaning of their own. Fixed, so that both sides know it
 * before any HELLO, and small, so that the payload bytes the WebSocket layer holds before gridwire's limits see them
 * are one message's per connection, whatever maxFrameBytes is. That bounds bytes, not the pieces they come in: the
 * number of WebSocket frames of one message and of socket reads of one frame are bounded apart
 * (transport/websocket-transport.ts: WEBSOCKET_MAX_FRAGMENTS, WEBSOCKET_MAX_BUFFERED_CHUNKS).
 */
export const WEBSOCKET_MAX_MESSAGE_BYTES = FRAME_HEADER_BYTES + DEFAULT_LIMITS.maxFrameBytes;
