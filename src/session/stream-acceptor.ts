/**
 * The streams the peer opens (on both roles: dialer and acceptor alike take the other side's streams): the ids it
 * may use (its parity, each above the last), our limit on how many of them may be open at once, and whether an OPEN
 * is taken, refused (RESET REFUSED: the peer may retry elsewhere) or reset for a malformed payload; the peer guard
 * counts refusals and resets. Knows nothing of the stream table or of what a stream is for: the session puts what is
 * accepted in its table and hands it on.
 *
 * Slots. A stream the peer opened holds a slot of `active` (what the peer's own count of open streams matches) until
 * it has closed AND its handler has returned (release): a handler that outlives a cancel still counts, so a peer that
 * opens and cancels at once cannot make us run handlers without bound (Rapid Reset, CVE-2023-44487). But the peer's
 * opener frees its slot as soon as it writes the RESET, so an honest peer that cancels would then be refused: a
 * stream the peer cancels while its handler runs therefore moves to a second pool, `cancelledRunning`, held to
 * maxConcurrentStreams too, and leaves it when the handler returns. Running handlers stay within 2 x
 * maxConcurrentStreams. Only when that pool is full (handlers that ignore their AbortSignal while the peer keeps
 * cancelling) does the cancelled stream keep its slot in `active` and count as a reset (the peer guard's Rapid Reset
 * counter).
 *
 *   a peer stream's slot     | event                                   | next
 *   -------------------------|-----------------------------------------|---------------------------------------------
 *   active                   | closes, owner already released          | freed
 *   active                   | owner releases, stream already closed   | freed
 *   active                   | peer RESET, owner not released, pool    | cancelledRunning (active frees, not counted)
 *                            | has room                                |
 *   active                   | peer RESET, owner not released, pool    | active (counted: guard.peerCancelled)
 *                            | full                                    |
 *   cancelledRunning         | owner releases (handler returned)       | freed
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
 * reading) and counts as a refusal; a malformed OPEN is a reset the peer provoked; a cancel of a running handler
 * when the cancelled pool is full is a Rapid Reset; an accepted one may earn CREDIT.
 */
export interface AcceptorGuard {
  replySolicited(what: string, blocked: boolean): void;
  streamRefused(): void;
  resetProvoked(): void;
  peerCancelled(): void;
  streamOpened(): void;
}

export class StreamAcceptor {
  /** Highest stream id the peer has used: the next must be above it. */
  private lastId = 0;
  /** Highest peer stream id we accepted (not refused): what GOAWAY reports, so it never grows between GOAWAYs. */
  private lastAcceptedId = 0;
  /** Peer streams holding a slot: freed when the stream has closed and its owner has released it. */
  private active = 0;
  /**
   * Peer streams the peer cancelled while their handlers ran, moved out of `active` (at most maxConcurrentStreams):
   * each leaves when its owner releases it. A set, touched only by cancels; release checks its size first.
   */
  private readonly cancelledRunning = new Set<Stream>();
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
    if (this.cancelledRunning.size !== 0 && this.cancelledRunning.delete(stream)) return;
    if (stream.closed) this.active--;
  }

  /**
   * The peer is resetting a stream it opened (before the stream closes). While its handler runs, the stream moves to
   * the cancelled pool and frees its slot in `active`, as the peer's opener already did; with the pool full it stays
   * in `active` and counts as a Rapid Reset (the guard throws past maxResetsPer30s). A stream whose handler has
   * returned (its response waiting for credit) frees its slot when it closes, as any other.
   */
  peerReset(stream: Stream): void {
    if (stream.outbound || stream.ownerReleased) return;
    if (this.cancelledRunning.size < this.options.maxConcurrentStreams) {
      this.cancelledRunning.add(stream);
      this.active--;
      return;
    }
    this.guard.peerCancelled();
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
