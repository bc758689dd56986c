/**
 * Reads the WebSocket frames a peer sends, in front of ws's own Receiver, so that the binary messages gridwire's frames
 * travel in reach the transport as views of the socket's reads rather than copies. ws's Receiver copies every payload
 * that straddles two socket reads into a buffer of its own (Receiver.consume); a 64 KiB DATA payload is one message of
 * 65 536 bytes and a socket read at most 64 KiB, so nearly every bulk message was copied, and the copy's allocation
 * and collection cost more than the copying: a ws:// download's receiver spent about half its CPU there. Knows nothing
 * of gridwire's frames: a message's bytes are handed on as they are.
 *
 * It takes only the frames gridwire's own peers send: a whole binary message in one frame (FIN, opcode 2, no RSV bit),
 * of 1 to WEBSOCKET_MAX_MESSAGE_BYTES bytes, unmasked from a server and masked with the all-zero key from a client
 * (zeroMask), outside a fragmented message. Its payload is held as views of the reads it came in until it is whole,
 * then handed on piece by piece: what ws did (a message is handed on only when whole, so nothing of one is parsed
 * before), without the copy, and with ws's bound on the socket reads one frame may take (WEBSOCKET_MAX_BUFFERED_CHUNKS:
 * beyond, the transport is told, and nothing more is read). Every other frame (pings, pongs, close, text, fragments, a
 * client's frame masked with another key, an empty message, anything malformed or over the bound) goes to ws's
 * Receiver byte for byte, in runs as they came, and ws judges and answers it as it always did: the close handshake,
 * pongs, maxPayload, maxFragments, RFC 6455's rules. Once ws's Receiver stops (it took a close frame, or failed), the
 * rest is dropped, as ws drops it.
 *
 * It sits where ws hands the socket's bytes to its Receiver (`ws._receiver.write`, the one way in, from ws's 'data'
 * listener and from its close handler alike). That is ws's inside, not its API: `install` checks the shape and, when
 * it differs, leaves ws alone (every message then comes through ws's 'message' event, copies and all), and
 * test/transport/websocket-copies.test.ts fails if bulk messages come copied.
 *
 * | state   | input                                                     | next                                       |
 * |---------|-----------------------------------------------------------|--------------------------------------------|
 * | HEADER  | a header, whole (gathered over reads if it straddles)     | MESSAGE: a frame as above                  |
 * |         |                                                           | PASS: any other (its header passed on)     |
 * |         |                                                           | HEADER: any other, empty (passed on whole) |
 * | MESSAGE | payload bytes                                             | MESSAGE (views held)                       |
 * |         | the last payload byte                                     | HEADER (the message handed on)             |
 * |         | a read beyond WEBSOCKET_MAX_BUFFERED_CHUNKS held          | STOPPED (the transport told: dribbled)     |
 * | PASS    | payload bytes                                             | PASS (passed on)                           |
 * |         | the last payload byte                                     | HEADER                                     |
 * | any     | ws's Receiver stopped after bytes passed on               | STOPPED                                    |
 * | STOPPED | anything                                                  | STOPPED (dropped)                          |
 */
import { readU32 } from '../wire/bytes.js';
import { WEBSOCKET_MAX_MESSAGE_BYTES } from '../wire/constants.js';

/** Where the messages the reader takes go. */
export interface BinaryMessageSink {
  /** The next piece of a binary message (never empty), a view of a socket read; `last` on its final piece. */
  binaryPiece(piece: Buffer, last: boolean): void;
  /** A message still incomplete after `reads` socket reads, the bound: nothing more is read. */
  dribbled(reads: number): void;
}

const enum State {
  HEADER,
  MESSAGE,
  PASS,
  STOPPED,
}

/** FIN and opcode 2 (binary), no RSV bit: the first header byte of every message gridwire sends. */
const WHOLE_BINARY_MESSAGE = 0x82;
const FIN = 0x80;
const OPCODE_MASK = 0x0f;
/** Opcodes from 8 on are control frames: they may come inside a fragmented message and do not end it. */
const FIRST_CONTROL_OPCODE = 0x08;
const MASKED = 0x80;
const LENGTH_MASK = 0x7f;
/** The longest header: 2 bytes, a 64-bit length, a masking key. */
const MAX_HEADER_BYTES = 14;

/** Bytes of a header, from its second byte (the mask bit and the 7-bit length). */
function headerBytes(second: number): number {
  const length7 = second & LENGTH_MASK;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((second & MASKED) !== 0 ? 4 : 0);
}

/** ws's Receiver as far as the reader uses it: a node Writable. */
interface ReceiverLike {
  write(chunk: Buffer): boolean;
  readonly writable: boolean;
}

export class BinaryMessageReader {
  private state = State.HEADER;
  /** A header that straddles reads, gathered. */
  private readonly header = new Uint8Array(MAX_HEADER_BYTES);
  private headerFill = 0;
  /** Payload bytes of the current frame still to come. */
  private remaining = 0;
  /** A message's pieces until it is whole (one per read; the array is reused). */
  private readonly held: Buffer[] = [];
  /** Inside a fragmented message (ws has its first frame): every data frame goes to ws until it ends. */
  private fragmented = false;

  private constructor(
    private readonly receiver: ReceiverLike,
    /** Writable.prototype.write of ws's Receiver: how bytes are passed on. */
    private readonly passOn: (chunk: Buffer) => boolean,
    private readonly sink: BinaryMessageSink,
    /** The peer is a client: its frames must be masked (and are taken only with the zero key). */
    private readonly peerMasks: boolean,
    /** Socket reads a message may take; at the next, the sink is told it dribbles (ws's maxBufferedChunks). */
    private readonly maxReads: number,
  ) {}

  /**
   * Puts a reader in front of `ws`'s Receiver, right after the upgrade (before the socket delivers a byte). Undefined
   * when ws is not shaped as expected: ws then reads everything itself.
   */
  static install(ws: object, sink: BinaryMessageSink, options: { peerMasks: boolean; maxReads: number }): BinaryMessageReader | undefined {
    const receiver = (ws as { _receiver?: unknown })._receiver as Partial<ReceiverLike> | null | undefined;
    if (receiver === null || typeof receiver !== 'object' || typeof receiver.write !== 'function' || receiver.writable !== true) return undefined;
    const passOn = receiver.write.bind(receiver);
    const reader = new BinaryMessageReader(receiver as ReceiverLike, passOn, sink, options.peerMasks, options.maxReads);
    receiver.write = (chunk: Buffer): boolean => reader.read(chunk);
    return reader;
  }

  /** One socket read. False: ws's Receiver asks for the socket to pause (its own back pressure). */
  read(chunk: Buffer): boolean {
    const end = chunk.length;
    let offset = 0;
    /** Where the bytes of this read that go to ws start (a run of frames it judges), or -1. */
    let passFrom = -1;
    let more = true;
    while (offset < end) {
      switch (this.state) {
        case State.HEADER: {
          const frameStart = offset;
          let source: Uint8Array = chunk;
          let at = offset;
          if (this.headerFill === 0 && end - offset >= 2 && end - offset >= headerBytes(chunk[offset + 1]!)) {
            offset += headerBytes(chunk[offset + 1]!);
          } else {
            if (passFrom !== -1) {
              more = this.pass(chunk.subarray(passFrom, frameStart));
              passFrom = -1;
              if (this.stopped()) return more;
            }
            offset = this.gatherHeader(chunk, offset, end);
            if (this.headerFill < 2 || this.headerFill < headerBytes(this.header[1]!)) break; // the rest in a later read
            source = this.header;
            at = 0;
          }
          this.headerFill = 0;
          const first = source[at]!;
          const second = source[at + 1]!;
          const size = headerBytes(second);
          const masked = (second & MASKED) !== 0;
          let length = second & LENGTH_MASK;
          if (length === 126) length = source[at + 2]! * 2 ** 8 + source[at + 3]!;
          else if (length === 127) length = readU32(source, at + 2) * 2 ** 32 + readU32(source, at + 6); // ws refuses above 2^53
          const taken =
            first === WHOLE_BINARY_MESSAGE && !this.fragmented && masked === this.peerMasks && length > 0 && length <= WEBSOCKET_MAX_MESSAGE_BYTES &&
            (!masked || (source[at + size - 4]! | source[at + size - 3]! | source[at + size - 2]! | source[at + size - 1]!) === 0);
          if (taken) {
            if (passFrom !== -1) {
              more = this.pass(chunk.subarray(passFrom, frameStart));
              passFrom = -1;
              if (this.stopped()) return more;
            }
            this.state = State.MESSAGE;
            this.remaining = length;
            break;
          }
          // as ws tracks it: a data frame without FIN starts (or continues) a fragmented message, one with FIN ends it
          if ((first & OPCODE_MASK) < FIRST_CONTROL_OPCODE) this.fragmented = (first & FIN) === 0;
          if (source === this.header) {
            // it started in an earlier read, and ws has seen none of it: the whole header, copied (ws may keep it)
            more = this.pass(Buffer.from(this.header.subarray(0, size)));
            if (this.stopped()) return more;
          } else if (passFrom === -1) {
            passFrom = frameStart;
          }
          this.remaining = length;
          this.state = length === 0 ? State.HEADER : State.PASS;
          break;
        }
        case State.MESSAGE: {
          const held = this.held;
          if (held.length >= this.maxReads) {
            const reads = held.length;
            this.stop();
            this.sink.dribbled(reads);
            return more;
          }
          const n = Math.min(this.remaining, end - offset);
          // a read that is all payload is held as it came, not as a view of itself: a message dribbled a byte a read
          // would otherwise hold a view per read beside the read itself (~60 bytes each)
          const piece = n === end ? chunk : chunk.subarray(offset, offset + n);
          offset += n;
          this.remaining -= n;
          if (this.remaining > 0) {
            held.push(piece);
            break;
          }
          this.state = State.HEADER;
          if (held.length === 0) {
            this.sink.binaryPiece(piece, true); // the whole message in this read
            break;
          }
          held.push(piece);
          const last = held.length - 1;
          for (let i = 0; i <= last; i++) this.sink.binaryPiece(held[i]!, i === last);
          held.length = 0;
          break;
        }
        case State.PASS: {
          const n = Math.min(this.remaining, end - offset);
          if (passFrom === -1) passFrom = offset;
          offset += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.HEADER;
          break;
        }
        case State.STOPPED:
          return more;
      }
    }
    if (passFrom !== -1) more = this.pass(chunk.subarray(passFrom, end));
    return more;
  }

  /** Copies what the read has of a header that straddles reads; returns the offset after it. */
  private gatherHeader(chunk: Buffer, offset: number, end: number): number {
    const header = this.header;
    while (offset < end && this.headerFill < (this.headerFill < 2 ? 2 : headerBytes(header[1]!))) header[this.headerFill++] = chunk[offset++]!;
    return offset;
  }

  /** Bytes for ws's Receiver to judge; once it has stopped (a close frame, a violation) nothing more is read. */
  private pass(bytes: Buffer): boolean {
    const more = bytes.length === 0 ? true : this.passOn(bytes);
    if (!this.receiver.writable) this.stop();
    return more;
  }

  /** A method, not a field read: TypeScript would narrow the field to the state its case began in. */
  private stopped(): boolean {
    return this.state === State.STOPPED;
  }

  private stop(): void {
    this.state = State.STOPPED;
    this.held.length = 0;
  }
}
