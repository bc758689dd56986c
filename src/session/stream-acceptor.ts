/**
 * The streams the peer opens (on both roles: dialer and acceptor alike take the other side's streams): the ids it
 * may use (its parity, each above the last), our limit on how many of them may be open at once, and whether an OPEN
 * is taken, refused (RESET REFUSED: the peer may retry elsewhere) or reset for a malformed payload; the peer guard
 * counts refusals and resets. Knows nothing of the stream table or of what a stream is for: the session puts what is
 * accepted in its table and hands it on.
 */
import { Flag, FrameType, Status } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import type { HelloSettings } from '../wire/hello.js';
import type { MetadataLimits } from '../wire/metadata.js';
import { decodeOpen, encodeReset, type OpenPayload } from '../wire/payloads.js';
import { streamErrorOf } from './errors.js';
import { Stream, type StreamHost, type StreamOutput } from './stream.js';

/** A stream the peer opened, with what its OPEN said. */
export interface IncomingStream {
  stream: Stream;
  method: string;
  metadata: OpenPayload['metadata'];
  /** Relative deadline from OPEN, in ms; 0 = none. */
  deadlineMs: number;
}

export interface StreamAcceptorOptions extends MetadataLimits {
  maxConcurrentStreams: number;
  initialStreamWindow: number;
  initialMessageWindow: number;
}

/**
 * The part of the peer guard the acceptor reports to: a refusal is a RESET the peer solicited (which it may not be
 * reading) and counts as a refusal; a malformed OPEN is a reset the peer provoked; an accepted one may earn CREDIT.
 */
export interface AcceptorGuard {
  replySolicited(what: string, blocked: boolean): void;
  streamRefused(): void;
  resetProvoked(): void;
  streamOpened(): void;
}

export class StreamAcceptor {
  /** Highest stream id the peer has used: the next must be above it. */
  private lastId = 0;
  /** Highest peer stream id we accepted (not refused): what GOAWAY reports, so it never grows between GOAWAYs. */
  private lastAcceptedId = 0;
  /** Peer streams holding a slot: freed when the stream has closed and its owner has released it. */
  private active = 0;
  /** The peer's settings: its HELLO comes before any of its OPENs. */
  private peer: HelloSettings | undefined;

  constructor(
    private readonly dialer: boolean,
    private readonly options: StreamAcceptorOptions,
    private readonly host: StreamHost,
    private readonly output: StreamOutput,
    private readonly guard: AcceptorGuard,
  ) {}

  /** The stream id our GOAWAY reports: the last one of the peer's that we took. */
  get lastAccepted(): number {
    return this.lastAcceptedId;
  }

  /** True for an id of the peer's that it has not used yet. */
  isUnused(id: number): boolean {
    return id > this.lastId;
  }

  /** The peer's HELLO was accepted: its windows are those of the streams it opens. */
  start(peer: HelloSettings): void {
    this.peer = peer;
  }

  /**
   * The peer's OPEN for `id`. Returns the new stream, or undefined when it was refused (the session is shutting down,
   * or our limit is reached) or reset (a malformed payload). Throws ProtocolError for an id the peer may not use.
   */
  accept(id: number, payload: Uint8Array, shuttingDown: boolean): IncomingStream | undefined {
    if (id % 2 === (this.dialer ? 1 : 0) || id <= this.lastId) {
      throw new ProtocolError(ProtocolErrorCode.BAD_STREAM_ID, `OPEN with stream id ${id} (last was ${this.lastId}, ours are ${this.dialer ? 'odd' : 'even'})`);
    }
    this.lastId = id;
    if (shuttingDown) {
      this.refuse(id, 'the session is shutting down');
      return undefined;
    }
    if (this.active >= this.options.maxConcurrentStreams) {
      this.refuse(id, `the peer allows at most ${this.options.maxConcurrentStreams} concurrent streams`);
      return undefined;
    }
    let open: OpenPayload;
    try {
      open = decodeOpen(payload, this.options);
    } catch (error) {
      this.guard.resetProvoked();
      this.output.writeFrame(FrameType.RESET, 0, id, encodeReset(...streamErrorOf(error, 'OPEN')));
      return undefined;
    }
    const peer = this.peer!;
    const sendWindow = open.window === 0 ? peer.initialStreamWindow : open.window;
    const stream = new Stream(
      this.host, this.output, id, false,
      sendWindow, this.options.initialStreamWindow,
      peer.initialMessageWindow, this.options.initialMessageWindow,
    );
    this.lastAcceptedId = id;
    this.active++;
    this.guard.streamOpened();
    return { stream, method: open.method, metadata: open.metadata, deadlineMs: open.deadlineMs };
  }

  /**
   * The owner of a stream the peer opened is done with it (its handler has returned). Its slot frees once the stream
   * has also closed, so neither a running handler nor a response still waiting for credit escapes the limit.
   */
  release(stream: Stream): void {
    if (stream.outbound || stream.ownerReleased) return;
    stream.ownerReleased = true;
    if (stream.closed) this.active--;
  }

  /** A stream the peer opened has closed: its slot frees if its owner has released it. */
  closed(stream: Stream): void {
    if (stream.ownerReleased) this.active--;
  }

  private refuse(id: number, reason: string): void {
    this.guard.streamRefused();
    this.guard.replySolicited('RESET', !this.output.writable);
    this.output.writeFrame(FrameType.RESET, Flag.REFUSED, id, encodeReset(Status.UNAVAILABLE, reason));
  }
}
