/**
 * A Transport over one `ws` WebSocket (docs/PROTOCOL.md §14, "WebSocket binding"): what the session writes goes out
 * as binary messages of at most WEBSOCKET_MAX_MESSAGE_BYTES, with no regard for frame boundaries (the receiver's frame
 * decoder reassembles, as it does TCP segments), and each binary message received is handed on as bytes. Knows
 * nothing of frames; knows of HTTP only that an accepted connection may not be upgraded yet.
 *
 * - **Writes**: one message per chunk the session hands over (a chunk above the bound is cut into several), sent with
 *   the socket corked so that one write() leaves in one vectored write, and never copied: compression is off, and a
 *   dialer masks with the all-zero key (see `zeroMask`), which ws sends without touching the bytes.
 * - **Back pressure**: `ws.send()` never refuses, so write() answers from the socket underneath, as SocketTransport
 *   does: false once what it buffers passes its high-water mark, onDrain on its 'drain'. With compression off ws
 *   queues nothing of its own, so `bufferedAmount` is the socket's buffer, and it is what writableLength reports.
 * - **Reading**: gridwire's binary messages are read off the socket by a BinaryMessageReader in front of ws's
 *   Receiver and reach the session as views of the socket's reads (ws copied each one that straddled two reads); every
 *   other frame goes through ws as before, and a message that takes more than WEBSOCKET_MAX_BUFFERED_CHUNKS reads
 *   closes the connection as ws's own bound did. The read budget pauses and resumes the WebSocket (ws pauses the
 *   socket), counts as SocketTransport's does, and counts pings and pongs as it counts messages; a text message, or any WebSocket frame RFC 6455 forbids, closes the connection with a
 *   ProtocolError (GW_ERR_WEBSOCKET; a message over the bound GW_ERR_FRAME_SIZE); more than
 *   WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW pings, pongs or empty messages in a row close it with
 *   GW_ERR_ENHANCE_YOUR_CALM, as does a peer that pings and leaves ws's pongs unsent.
 * - **EOF**: a WebSocket has no half-close. The peer's close frame with 1000, 1001 or no code is the end of its bytes
 *   (onEnd, then onClose without an error); any other code, or a connection lost without a close frame, is an error.
 *   end() sends our close frame after what was written, and messages that arrive before the peer's close frame are
 *   still delivered.
 *
 * An acceptor hands the transport to its session as the TCP connection is accepted, before the upgrade, so that the
 * session's handshake deadline and the listener's pending-handshake cap cover the upgrade too:
 *
 * | state     | event                                                  | next                                     |
 * |-----------|--------------------------------------------------------|------------------------------------------|
 * | UPGRADING | writes: queued (only the HELLO, or a GOAWAY, come now) | UPGRADING                                |
 * | UPGRADING | the upgrade succeeded: open(ws, socket)                | OPEN (queued writes sent, reading starts) |
 * | UPGRADING | end(), destroy(), the connection closed or was refused | CLOSED (onClose with why)                |
 * | OPEN      | the peer's close frame 1000/1001/none, connection gone | CLOSED (onEnd, then onClose)             |
 * | OPEN      | any other close, a violation, the connection lost      | CLOSED (onClose with the error)          |
 * | OPEN      | end(): our close frame after what was written          | OPEN until the peer's close frame, or    |
 * |           |                                                        | ws's closeTimeout (CLOSED, no error)     |
 * | OPEN      | destroy(): terminated at once                          | CLOSED (onClose, the error if one given) |
 *
 * A dialer's transport is made only once its upgrade has succeeded (dial() bounds that itself), so it starts OPEN.
 */
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { WEBSOCKET_MAX_MESSAGE_BYTES } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import type { PeerInfo, Transport, TransportSink } from './transport.js';
import { BinaryMessageReader, type BinaryMessageSink } from './websocket-message-reader.js';

const enum State {
  UPGRADING,
  OPEN,
  CLOSED,
}

/** Close codes that end the peer's bytes cleanly: normal closure, going away, and a close frame without a code. */
const CLEAN_CLOSE_CODES = new Set([1000, 1001, 1005]);
/** RFC 6455 close code for a data type the endpoint cannot accept (a text message, here). */
const UNSUPPORTED_DATA = 1003;
/** Options of every ws.send(): binary, one whole message (fin), never compressed. */
const SEND_OPTIONS = { binary: true, fin: true, compress: false } as const;
/** RFC 6455 close code for a message that violates the endpoint's policy (a flood, here). */
const POLICY_VIOLATION = 1008;

/**
 * WebSocket frames one message may come in (ws `maxFragments`; ws's default is 16 384). gridwire never fragments (each
 * message is one frame), so a peer that does gains nothing from more: beyond, the connection closes (1008,
 * GW_ERR_ENHANCE_YOUR_CALM). ws keeps a Buffer per fragment until the message is whole: 16 383 one-byte fragments
 * held ~1.7 MiB of heap for 112 KiB on the wire.
 */
export const WEBSOCKET_MAX_FRAGMENTS = 64;
/**
 * Socket reads a WebSocket frame may take to arrive (ws `maxBufferedChunks`; ws's default is 262 144). ws keeps each
 * chunk the socket delivered until the frame is whole, each costing a Buffer object: a peer that writes a 65 546-byte
 * frame one byte per TCP segment held ~10 MiB of RSS per connection at the default. 1 024 reads of a frame of at most
 * WEBSOCKET_MAX_MESSAGE_BYTES leave 64 bytes per read on average, far below any real network's segments; beyond, the
 * connection closes (1008, GW_ERR_ENHANCE_YOUR_CALM). BinaryMessageReader, which holds gridwire's own messages as views
 * of the reads they came in until each is whole, keeps the same bound.
 */
export const WEBSOCKET_MAX_BUFFERED_CHUNKS = 1_024;
/**
 * WebSocket frames in a row that bring no byte of gridwire's stream: pings, pongs and empty binary messages (a gridwire
 * peer sends none of them; §10a's liveness is gridwire PING frames). The rule of the session's empty frames
 * (session/peer-guard.ts, MAX_CONSECUTIVE_EMPTY_FRAMES): a handful is allowed, since an intermediary may ping; beyond,
 * the connection closes with GW_ERR_ENHANCE_YOUR_CALM. Any binary message with bytes starts the count again.
 */
export const WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW = 16;
/** What a control frame costs on the wire besides its payload, charged to the read budget: its header and mask. */
const CONTROL_FRAME_OVERHEAD = 6;

/**
 * The masking key of every message a dialer sends: all zeros. RFC 6455 requires a client to mask and a server to
 * refuse unmasked frames, and a zero key is a masked frame by the RFC's grammar; ws then skips the XOR on both sides,
 * which with a random key costs the uploading side a copy and a byte-by-byte JavaScript loop over every byte sent.
 * Masking exists so that script in a browser cannot choose the bytes a proxy on the path sees (cache poisoning of
 * intermediaries that do not understand WebSocket); between daemons the bytes come from the daemon itself
 * (PROTOCOL.md §14 says why that is acceptable, and where it is not).
 */
export function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** @internal Made by websocket.ts (its declarations would need `ws`'s types, which users need not have). */
export class WebSocketTransport implements Transport, BinaryMessageSink {
  private state = State.UPGRADING;
  private sink: TransportSink | undefined;
  private ws: WebSocket | undefined;
  /** The socket under the WebSocket (a TLSSocket for wss): corked around each write, and its 'drain' is ours. */
  private socket: Duplex | undefined;
  /** Written while upgrading (the HELLO), sent once open. */
  private queued: Uint8Array[] = [];
  /** Messages that arrived before attach(). */
  private early: Buffer[] = [];
  /** Why the connection failed, when it did: reported by onClose (the first reason wins). */
  private failure: Error | undefined;
  /** destroy() was called without an error: the close that follows is ours, not a failure. */
  private destroyedQuietly = false;
  /**
   * end() sent our close frame: a close without the peer's (1006) is then ours too, not a failure (a peer that never
   * answers is cut by ws's closeTimeout, as a socket that never answers our FIN is by the session's linger).
   */
  private ended = false;
  /** end() came before the upgrade (givenUp). */
  private endedUpgrading = false;
  private readBudget = 0;
  private readThisTurn = 0;
  /** The count restarts at the next turn (a setImmediate is pending). */
  private restartArmed = false;
  private yielded = false;
  private readingStopped = false;
  /** WebSocket frames in a row that carried no byte of the stream (WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW). */
  private emptyInARow = 0;

  /**
   * `upgrading`: the accepted connection whose upgrade is still to come (an acceptor's transport), destroyed if the
   * session gives up first; without it, call open() before anything else (a dialer's).
   */
  constructor(
    readonly peer: PeerInfo,
    private readonly upgrading?: Duplex,
  ) {
    upgrading?.once('close', this.upgradingClosed);
  }

  /** The session ended or destroyed the connection before its upgrade: what fails from then on is its doing. */
  get givenUp(): boolean {
    return this.state === State.UPGRADING && (this.destroyedQuietly || this.failure !== undefined || this.endedUpgrading);
  }

  /** The upgrade succeeded: `ws` runs over `socket`. Sends what was written meanwhile. */
  open(ws: WebSocket, socket: Duplex): void {
    if (this.state !== State.UPGRADING) {
      ws.terminate(); // given up on while the upgrade completed
      return;
    }
    this.upgrading?.off('close', this.upgradingClosed);
    this.state = State.OPEN;
    this.ws = ws;
    this.socket = socket;
    // gridwire's messages reach us as views of the socket's reads, not through ws's 'message' (which copies most)
    BinaryMessageReader.install(ws, this, { peerMasks: this.upgrading !== undefined, maxReads: WEBSOCKET_MAX_BUFFERED_CHUNKS });
    ws.on('message', this.onMessage);
    ws.on('ping', this.onControlFrame);
    ws.on('pong', this.onControlFrame);
    ws.on('error', this.onError);
    ws.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    if (this.sink === undefined) ws.pause(); // until attach(): bytes wait in the kernel, not here
    const queued = this.queued;
    this.queued = [];
    if (queued.length > 0) this.write(queued);
  }

  attach(sink: TransportSink): void {
    if (this.sink) throw new Error('transport already attached');
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const message of early) sink.onData(message);
    if (this.state === State.OPEN && !this.readingStopped) this.ws!.resume();
    if (this.state === State.CLOSED) queueMicrotask(() => sink.onClose(this.failure ?? new Error('the WebSocket closed before the session started')));
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.state === State.UPGRADING) {
      for (const chunk of chunks) this.queued.push(chunk);
      return true;
    }
    const ws = this.ws;
    if (this.state !== State.OPEN || ws!.readyState !== ws!.OPEN) return false;
    const socket = this.socket!;
    socket.cork();
    for (const chunk of chunks) {
      const length = chunk.length;
      if (length <= WEBSOCKET_MAX_MESSAGE_BYTES) {
        if (length > 0) ws!.send(chunk, SEND_OPTIONS);
        continue;
      }
      for (let at = 0; at < length; at += WEBSOCKET_MAX_MESSAGE_BYTES) {
        ws!.send(chunk.subarray(at, Math.min(length, at + WEBSOCKET_MAX_MESSAGE_BYTES)), SEND_OPTIONS);
      }
    }
    socket.uncork();
    return !socket.writableNeedDrain;
  }

  /** Bytes sent and not yet handed to the OS (ws's bufferedAmount: the socket's buffer, ws queues nothing itself). */
  get writableLength(): number {
    if (this.ws !== undefined) return this.ws.bufferedAmount;
    let bytes = 0;
    for (const chunk of this.queued) bytes += chunk.length;
    return bytes;
  }

  end(): void {
    if (this.state === State.UPGRADING) {
      this.endedUpgrading = true;
      this.upgrading?.destroy(); // nothing to say goodbye in before the upgrade
    } else if (this.state === State.OPEN) {
      this.ended = true;
      this.ws!.close(1000);
    }
  }

  destroy(error?: Error): void {
    if (this.state === State.CLOSED) return;
    if (error === undefined) this.destroyedQuietly = true;
    else this.failure ??= error;
    if (this.state === State.UPGRADING) this.upgrading?.destroy();
    else this.ws!.terminate();
  }

  /** As SocketTransport's: at most this many bytes delivered per event-loop turn, then a yield (0: no limit). */
  setReadBudget(bytes: number): void {
    this.readBudget = bytes;
  }

  chargeRead(bytes: number): void {
    if (this.readBudget === 0 || bytes === 0) return;
    this.countRead(bytes); // checked against the budget at the end of the message
  }

  /**
   * As SocketTransport's: the count restarts at the turn after it reached half the budget, not after every turn that
   * read, so a connection of small calls pays no setImmediate per message.
   */
  private countRead(bytes: number): void {
    this.readThisTurn += bytes;
    if (this.restartArmed || this.readThisTurn * 2 < this.readBudget) return;
    this.restartArmed = true;
    setImmediate(this.nextTurn);
  }

  /** Stops reading for good: ws pauses the socket, and TCP then stops the sender. */
  pauseReading(): void {
    this.readingStopped = true;
    this.ws?.pause();
  }

  private readonly nextTurn = (): void => {
    this.restartArmed = false;
    this.readThisTurn = 0;
    if (this.yielded) {
      this.yielded = false;
      if (this.state === State.OPEN && !this.readingStopped) this.ws!.resume();
    }
  };

  /** A message that came through ws (one BinaryMessageReader did not take): text is refused, empty is counted. */
  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.state !== State.OPEN || this.failure !== undefined) return;
    if (!isBinary) return this.violated(new ProtocolError(ProtocolErrorCode.WEBSOCKET, 'a text message: gridwire travels in binary messages only'), UNSUPPORTED_DATA);
    const chunk = data as Buffer; // binaryType 'nodebuffer' (ws's default): one Buffer per message
    if (chunk.length === 0) return this.carriedNothing('an empty binary message', CONTROL_FRAME_OVERHEAD);
    this.binaryPiece(chunk, true);
  };

  /** @internal BinaryMessageSink: the bytes of a binary message, handed on; the read budget is checked at its end. */
  binaryPiece(piece: Buffer, last: boolean): void {
    if (this.state !== State.OPEN || this.failure !== undefined) return;
    this.emptyInARow = 0;
    const sink = this.sink;
    if (sink === undefined) {
      this.early.push(piece);
      return;
    }
    if (this.readBudget === 0) return sink.onData(piece);
    this.countRead(piece.length);
    sink.onData(piece);
    if (last && this.readThisTurn >= this.readBudget && !this.yielded && this.state === State.OPEN) {
      this.yielded = true;
      this.ws!.pause();
    }
  }

  /** @internal BinaryMessageSink: a message still incomplete after that many socket reads (ws's maxBufferedChunks). */
  dribbled(reads: number): void {
    if (this.state !== State.OPEN || this.failure !== undefined) return;
    this.violated(new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, dribbleMessage(`${reads} socket reads`)), POLICY_VIOLATION);
    this.pauseReading(); // read no further: ws's closeTimeout ends the connection if no close frame comes
  }

  /**
   * A ping or a pong (ws has answered a ping already, unless more than 60 of its pongs wait unsent: then it has
   * terminated the connection, and this says why). Charged to the read budget like a message, and counted as a frame
   * that carries nothing.
   */
  private readonly onControlFrame = (data: Buffer): void => {
    if (this.state !== State.OPEN) return;
    const ws = this.ws!;
    if (ws.readyState !== ws.OPEN && this.failure === undefined && !this.ended) {
      this.failure = new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, 'WebSocket ping flood: the peer pings and does not read our pongs (more than 60 unsent: ws maxPendingAutoPongs)');
      return;
    }
    this.carriedNothing('a WebSocket ping or pong', data.length + CONTROL_FRAME_OVERHEAD);
  };

  /** A WebSocket frame that brought no byte of the stream: charged to the read budget, and too many in a row end it. */
  private carriedNothing(what: string, wireBytes: number): void {
    if (this.readBudget > 0) {
      this.countRead(wireBytes);
      if (this.readThisTurn >= this.readBudget && !this.yielded) {
        this.yielded = true;
        this.ws!.pause();
      }
    }
    if (this.failure !== undefined || ++this.emptyInARow <= WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW) return;
    this.violated(
      new ProtocolError(
        ProtocolErrorCode.ENHANCE_YOUR_CALM,
        `WebSocket empty frame flood: more than ${WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW} frames in a row brought no byte of the stream (the last: ${what}); pings, pongs and empty messages are allowed ${WEBSOCKET_MAX_EMPTY_FRAMES_IN_A_ROW} in a row`,
      ),
      POLICY_VIOLATION,
    );
    this.pauseReading(); // a flooder is not read further: ws's closeTimeout ends the connection if no close frame comes
  }

  /**
   * The peer broke the binding: nothing more is delivered, and it is told why in our close frame (the socket keeps
   * reading, so that the peer's close frame ends the connection at once rather than after ws's closeTimeout).
   */
  private violated(error: ProtocolError, closeCode: number): void {
    this.failure ??= error;
    this.ws!.close(closeCode, error.code);
  }

  /** ws reports a violation of RFC 6455 or of maxPayload, or the socket's error; 'close' always follows. */
  private readonly onError = (error: Error & { code?: string }): void => {
    this.failure ??= protocolErrorOf(error);
  };

  private readonly onDrain = (): void => {
    if (this.state === State.OPEN) this.sink?.onDrain();
  };

  private readonly onClose = (code: number, reason: Buffer): void => {
    if (this.state === State.CLOSED) return;
    let error = this.failure;
    const ours = this.destroyedQuietly || (this.ended && code === 1006);
    if (error === undefined && !ours && !CLEAN_CLOSE_CODES.has(code)) {
      error = code === 1006
        ? new Error('the WebSocket connection was lost without a close frame')
        : new Error(`the peer closed the WebSocket with code ${code}${reason.length > 0 ? ` (${reason.toString().slice(0, 123)})` : ''}`);
    }
    this.closed(error, error === undefined && !ours);
  };

  private readonly upgradingClosed = (): void => {
    if (this.state !== State.UPGRADING) return;
    this.closed(this.failure ?? (this.destroyedQuietly ? undefined : new Error('the connection closed before its WebSocket upgrade')), false);
  };

  private closed(error: Error | undefined, endOfBytes: boolean): void {
    this.state = State.CLOSED;
    this.queued = [];
    this.socket?.off('drain', this.onDrain);
    const sink = this.sink;
    if (sink === undefined) return; // attach() reports it
    if (endOfBytes) sink.onEnd();
    sink.onClose(error);
  }
}

/**
 * ws's own errors carry a `WS_ERR_*` code: a message over maxPayload is our frame-size error, any other a violation
 * of the binding. Socket errors (ECONNRESET...) stay as they are.
 */
function protocolErrorOf(error: Error & { code?: string }): Error {
  const code = error.code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return error;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    return new ProtocolError(ProtocolErrorCode.FRAME_SIZE, `a WebSocket message over ${WEBSOCKET_MAX_MESSAGE_BYTES} bytes (${code})`);
  }
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
    // ws says which of its two bounds only in the message
    return new ProtocolError(
      ProtocolErrorCode.ENHANCE_YOUR_CALM,
      /fragment/i.test(error.message)
        ? `a WebSocket message in more than ${WEBSOCKET_MAX_FRAGMENTS} fragments (gridwire sends each message as one frame) (${code})`
        : `${dribbleMessage(`${WEBSOCKET_MAX_BUFFERED_CHUNKS} socket reads`)} (${code})`,
    );
  }
  return new ProtocolError(ProtocolErrorCode.WEBSOCKET, `${error.message} (${code})`);
}

function dribbleMessage(reads: string): string {
  return `a WebSocket frame still incomplete after ${reads}: a peer that dribbles its bytes`;
}
