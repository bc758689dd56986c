/**
 * Turns a byte stream into frames. A named state machine (READ_HEADER, READ_PAYLOAD, SKIP_PAYLOAD) that tells
 * "need more bytes" from "malformed", and checks every header (length against the limit, stream id, per-type shape)
 * before it keeps a single payload byte. A payload that arrives whole inside one chunk is handed out as a view
 * without copying; the callee must use or copy it before returning. A DATA payload that straddles chunks is assembled
 * into a buffer of its own, unless the `pieces` option takes it (READ_PIECES): then it is handed out as it arrives, as
 * views of the chunks, with no copy (bulk bodies; messages still reassemble).
 *
 * | state         | input                                              | next                              |
 * |---------------|----------------------------------------------------|-----------------------------------|
 * | READ_HEADER   | header whole; payload empty, or whole in the chunk | READ_HEADER (frame delivered)     |
 * | READ_HEADER   | header whole; an extension frame's payload follows | SKIP_PAYLOAD                      |
 * | READ_HEADER   | header whole; the payload straddles chunks         | READ_PIECES if pieces takes it    |
 * |               |                                                    | (a DATA frame), else READ_PAYLOAD |
 * | READ_PAYLOAD  | the payload whole in the first chunk after a       | READ_HEADER (delivered as a view) |
 * |               | header that ended its chunk                        |                                   |
 * | READ_PAYLOAD  | the rest of the payload                            | READ_HEADER (delivered)           |
 * | READ_PIECES   | the rest of the payload                            | READ_HEADER (last piece)          |
 * | SKIP_PAYLOAD  | the rest of the payload                            | READ_HEADER (nothing delivered)   |
 */
import {
  CREDIT_PAYLOAD_BYTES,
  FIRST_EXTENSION_FRAME_TYPE,
  FRAME_HEADER_BYTES,
  FrameType,
  PING_PAYLOAD_BYTES,
} from './constants.js';
import { ProtocolError, ProtocolErrorCode } from './errors.js';
import { readU32 } from './bytes.js';

export type FrameHandler = (type: number, flags: number, streamId: number, payload: Uint8Array) => void;

/**
 * Takes DATA payloads that straddle chunks piece by piece instead of whole (the `pieces` option). Its header has been
 * checked as every header is (the frame limit, the stream id) before startData is asked.
 */
export interface DataPieces {
  /**
   * A DATA frame whose payload (`length` bytes, at least one) does not arrive whole in this chunk: true to take it as
   * pieces through dataPiece, false to have it assembled and delivered whole through onFrame. May throw (the error
   * leaves push()).
   */
  startData(flags: number, streamId: number, length: number): boolean;
  /**
   * The next piece of that payload, a view of the chunk pushed (valid only during the call, as a payload is); `last` on
   * the one that completes the frame. Pieces are never empty. May throw.
   */
  dataPiece(piece: Uint8Array, last: boolean): void;
}

const enum State {
  READ_HEADER,
  READ_PAYLOAD,
  SKIP_PAYLOAD,
  READ_PIECES,
}

const EMPTY = new Uint8Array(0);

/** The bit of a frame type in a mask of allowed types (types 0-31; the handshake's are all below 8). */
function typeBit(type: number): number {
  return 1 << type;
}

/** Frame types that belong to stream 0 (the connection) and those that belong to a stream. */
const CONNECTION_TYPES = new Set<number>([FrameType.HELLO, FrameType.PING, FrameType.GOAWAY]);
const STREAM_TYPES = new Set<number>([FrameType.OPEN, FrameType.DATA, FrameType.END, FrameType.RESET]);

export interface DecoderOptions {
  /** Largest payload accepted; may be raised later with setMaxFrameBytes (after the handshake). */
  maxFrameBytes: number;
  /** Refuse anything but HELLO as the first frame, with a message that says the peer is not gridwire. */
  expectHelloFirst?: boolean;
  /** With expectHelloFirst: a GOAWAY may come first too (a dialer's: the acceptor refuses it instead of a HELLO). */
  acceptGoawayFirst?: boolean;
  /**
   * Told of each extension frame (type 0x80-0xFF) as its header is read, before its payload is skipped: the frame is
   * never delivered, so this is the only way to count them. May throw (the error leaves push()).
   */
  onExtensionFrame?: (type: number) => void;
  /** Takes DATA payloads that straddle chunks as pieces (no copy); without it they are assembled. */
  pieces?: DataPieces;
}

export class FrameDecoder {
  private state = State.READ_HEADER;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  private length = 0;
  private payload: Uint8Array = EMPTY;
  private payloadFill = 0;
  private maxFrameBytes: number;
  /**
   * While not 0: the only frame types accepted, as bits (1 << type), on stream 0; anything else is
   * GW_ERR_BAD_HANDSHAKE with `restrictedWhy`. Set for the first frame (expectHelloFirst) and by allowOnly().
   */
  private allowedTypes = 0;
  private restrictedWhy = '';
  /** True until the first frame's header is read (while expectHelloFirst restricts it). */
  private firstFrame: boolean;
  private readonly onExtensionFrame: ((type: number) => void) | undefined;
  private readonly pieces: DataPieces | undefined;
  /** Set by parseHeader for an empty extension frame, which is complete but not delivered. */
  private skipEmpty = false;
  /** Frames completed so far (skipped extension frames too): the progress a frame-completion timer looks for. */
  private completed = 0;

  constructor(
    private readonly onFrame: FrameHandler,
    options: DecoderOptions,
  ) {
    this.maxFrameBytes = options.maxFrameBytes;
    this.firstFrame = options.expectHelloFirst ?? false;
    if (this.firstFrame) {
      this.allowedTypes = typeBit(FrameType.HELLO) | (options.acceptGoawayFirst === true ? typeBit(FrameType.GOAWAY) : 0);
      this.restrictedWhy = 'the peer\'s first bytes are not a gridwire HELLO frame (is it speaking HTTP, TLS or another protocol?)';
    }
    this.onExtensionFrame = options.onExtensionFrame;
    this.pieces = options.pieces;
  }

  setMaxFrameBytes(n: number): void {
    this.maxFrameBytes = n;
  }

  /**
   * From now on, until allowAll(), a frame of any other type is GW_ERR_BAD_HANDSHAKE saying `why` (a dialer being
   * admitted may send nothing but GOAWAY). Costs nothing per frame beyond the check the first frame already had.
   */
  allowOnly(types: readonly number[], why: string): void {
    // an empty mask would mean "no restriction": the opposite of what was asked
    if (types.length === 0) throw new RangeError('allowOnly() needs at least one frame type');
    for (const type of types) {
      if (!Number.isInteger(type) || type < 0 || type >= 32) throw new RangeError(`allowOnly(): frame type ${type} is outside 0-31`);
    }
    this.allowedTypes = types.reduce((bits, type) => bits | typeBit(type), 0);
    this.restrictedWhy = why;
  }

  /** Every frame type is accepted again. */
  allowAll(): void {
    this.allowedTypes = 0;
  }

  /** True between frames: a connection that ends now did not cut a frame in half. */
  get atFrameBoundary(): boolean {
    return this.state === State.READ_HEADER && this.headerFill === 0;
  }

  /** How many frames have completed so far; it only grows (one increment per frame: no timer per frame is needed). */
  get framesCompleted(): number {
    return this.completed;
  }

  /** Feeds bytes; calls onFrame for each complete frame. Throws ProtocolError; after that the decoder is unusable. */
  push(chunk: Uint8Array): void {
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      switch (this.state) {
        case State.READ_HEADER: {
          let next: State;
          if (this.headerFill === 0 && end - offset >= FRAME_HEADER_BYTES) {
            next = this.parseHeader(chunk, offset);
            offset += FRAME_HEADER_BYTES;
          } else {
            const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, end - offset);
            this.header.set(chunk.subarray(offset, offset + n), this.headerFill);
            this.headerFill += n;
            offset += n;
            if (this.headerFill < FRAME_HEADER_BYTES) return;
            this.headerFill = 0;
            next = this.parseHeader(this.header, 0);
          }
          this.state = next;
          if (next === State.READ_PAYLOAD) {
            if (end - offset >= this.length) {
              const payload = chunk.subarray(offset, offset + this.length);
              offset += this.length;
              this.state = State.READ_HEADER;
              this.onFrame(this.type, this.flags, this.streamId, payload);
            } else {
              // none yet when the header ended the chunk: the payload may come whole in the next one (a WebSocket
              // message of its own)
              this.payloadFill = 0;
              if (offset < end) this.startStraddling();
            }
          } else if (next === State.READ_HEADER && !this.skipEmpty) {
            // zero-length payload: the frame is complete with its header
            this.onFrame(this.type, this.flags, this.streamId, EMPTY);
          }
          this.skipEmpty = false;
          if (this.state === State.READ_HEADER) this.completed++; // whole in this chunk, or empty
          break;
        }
        case State.READ_PAYLOAD: {
          if (this.payloadFill === 0 && this.payload === EMPTY) {
            if (end - offset >= this.length) {
              // the whole payload in this chunk, after a chunk that ended with its header: a view, no copy
              const payload = chunk.subarray(offset, offset + this.length);
              offset += this.length;
              this.state = State.READ_HEADER;
              this.completed++;
              this.onFrame(this.type, this.flags, this.streamId, payload);
              break;
            }
            if (this.startStraddling()) break; // READ_PIECES takes it from here
          }
          const n = Math.min(this.length - this.payloadFill, end - offset);
          this.payload.set(chunk.subarray(offset, offset + n), this.payloadFill);
          this.payloadFill += n;
          offset += n;
          if (this.payloadFill === this.length) {
            const payload = this.payload;
            this.payload = EMPTY;
            this.state = State.READ_HEADER;
            this.completed++;
            this.onFrame(this.type, this.flags, this.streamId, payload);
          }
          break;
        }
        case State.READ_PIECES: {
          const n = Math.min(this.length - this.payloadFill, end - offset);
          const piece = chunk.subarray(offset, offset + n);
          this.payloadFill += n;
          offset += n;
          const last = this.payloadFill === this.length;
          if (last) {
            this.state = State.READ_HEADER;
            this.completed++;
          }
          this.pieces!.dataPiece(piece, last);
          break;
        }
        case State.SKIP_PAYLOAD: {
          const n = Math.min(this.length - this.payloadFill, end - offset);
          this.payloadFill += n;
          offset += n;
          if (this.payloadFill === this.length) {
            this.state = State.READ_HEADER;
            this.completed++;
          }
          break;
        }
      }
    }
  }

  /**
   * A payload that does not arrive whole in this chunk (some of it does): READ_PIECES if the pieces option takes it,
   * else a buffer to assemble it in (READ_PAYLOAD). True for pieces.
   */
  private startStraddling(): boolean {
    if (this.type === FrameType.DATA && this.pieces !== undefined && this.pieces.startData(this.flags, this.streamId, this.length)) {
      this.state = State.READ_PIECES;
      return true;
    }
    // allocation is safe here: parseHeader has checked length against the limit
    this.payload = new Uint8Array(this.length);
    return false;
  }

  private parseHeader(source: Uint8Array, at: number): State {
    const type = source[at]!;
    const flags = source[at + 1]!;
    const streamId = readU32(source, at + 2);
    const length = readU32(source, at + 6);
    if (this.allowedTypes !== 0) {
      if (type >= 32 || (this.allowedTypes & typeBit(type)) === 0 || streamId !== 0) {
        throw new ProtocolError(ProtocolErrorCode.BAD_HANDSHAKE, this.firstFrame ? this.restrictedWhy : `frame type ${type}: ${this.restrictedWhy}`);
      }
      if (this.firstFrame) {
        this.firstFrame = false;
        this.allowedTypes = 0;
      }
    }
    if (length > this.maxFrameBytes) {
      throw new ProtocolError(ProtocolErrorCode.FRAME_SIZE, `frame type ${type} declares ${length} payload bytes; the limit is ${this.maxFrameBytes}`);
    }
    if (streamId > 0x7fff_ffff) {
      throw new ProtocolError(ProtocolErrorCode.BAD_STREAM_ID, `stream id ${streamId} has the reserved bit set`);
    }
    if (type >= FIRST_EXTENSION_FRAME_TYPE) {
      this.onExtensionFrame?.(type);
      this.length = length;
      this.payloadFill = 0;
      this.skipEmpty = length === 0;
      return length === 0 ? State.READ_HEADER : State.SKIP_PAYLOAD;
    }
    if (CONNECTION_TYPES.has(type)) {
      if (streamId !== 0) throw new ProtocolError(ProtocolErrorCode.BAD_STREAM_ID, `frame type ${type} must be on stream 0, got ${streamId}`);
      if (type === FrameType.PING && length !== PING_PAYLOAD_BYTES) {
        throw new ProtocolError(ProtocolErrorCode.MALFORMED_FRAME, `PING payload must be ${PING_PAYLOAD_BYTES} bytes, got ${length}`);
      }
    } else if (STREAM_TYPES.has(type)) {
      if (streamId === 0) throw new ProtocolError(ProtocolErrorCode.BAD_STREAM_ID, `frame type ${type} must be on a stream, got stream 0`);
    } else if (type === FrameType.CREDIT) {
      if (length !== CREDIT_PAYLOAD_BYTES) {
        throw new ProtocolError(ProtocolErrorCode.MALFORMED_FRAME, `CREDIT payload must be ${CREDIT_PAYLOAD_BYTES} bytes, got ${length}`);
      }
    } else {
      throw new ProtocolError(ProtocolErrorCode.UNKNOWN_FRAME_TYPE, `frame type ${type} is unknown`);
    }
    this.type = type;
    this.flags = flags;
    this.streamId = streamId;
    this.length = length;
    return length === 0 ? State.READ_HEADER : State.READ_PAYLOAD;
  }
}
