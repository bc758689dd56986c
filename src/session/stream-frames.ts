/**
 * The frames the peer sends on a stream already open (DATA, END, RESET, and CREDIT for one stream), from the id they
 * carry to the stream: a frame for a stream that has closed is dropped, one for a stream never opened is a connection
 * error. Each must keep the peer's promises: DATA and END only while the peer may still send, DATA within the stream's
 * byte and message credit, a stream's CREDIT within 2^31-1; a broken promise throws a ProtocolError (the session fails
 * the connection). An END or RESET whose payload cannot be read fails only its stream. A RESET of a call the peer
 * opened goes to the acceptor first (its slot moves to the cancelled pool, or, that pool full, it counts as a Rapid
 * Reset). Knows nothing of connection credit, of opening
 * streams, or of what a stream is for; reads the session's stream table, never changes it.
 */
import { Flag, MAX_WINDOW, Status } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import type { MetadataLimits } from '../wire/metadata.js';
import { decodeEnd, decodeReset } from '../wire/payloads.js';
import { streamErrorOf } from './errors.js';
import type { Stream } from './stream.js';
import type { StreamAcceptor } from './stream-acceptor.js';
import type { StreamOpener } from './stream-opener.js';
import type { StreamLookup } from './stream-table.js';

export class StreamFrames {
  constructor(
    private readonly streams: StreamLookup,
    /** Which ids are ours and which have been used on each side: a frame for one not used yet is for no stream. */
    private readonly opener: StreamOpener,
    private readonly acceptor: StreamAcceptor,
    private readonly limits: MetadataLimits,
  ) {}

  /** DATA (the session has taken its bytes from the connection window). */
  data(flags: number, id: number, payload: Uint8Array): void {
    const stream = this.streamFor(id, 'DATA');
    if (stream === undefined) return;
    this.checkData(stream, flags, id, payload.length);
    stream.receiveData(flags, payload);
  }

  /**
   * The stream a DATA frame whose payload comes in pieces may go to as they arrive (data-pieces.ts): an open stream
   * reading a bulk body. Undefined for any other: that frame is assembled and goes through data().
   */
  bulkStream(id: number): Stream | undefined {
    const stream = this.streams.get(id);
    return stream !== undefined && stream.rawInbound && stream.opened ? stream : undefined;
  }

  /** The promises a DATA frame of `n` bytes must keep, checked at its header (data() and data-pieces.ts alike). */
  checkData(stream: Stream, flags: number, id: number, n: number): void {
    if (stream.remoteDone) throw new ProtocolError(ProtocolErrorCode.STREAM_STATE, `DATA on stream ${id} after the peer ended it`);
    if (n > stream.recvWindow) {
      throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, `DATA of ${n} bytes on stream ${id} exceeds its credit of ${stream.recvWindow}`);
    }
    if (flags & Flag.MESSAGE_END && !stream.rawInbound && stream.recvMessageWindow === 0) {
      throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, `a message on stream ${id} exceeds its message credit`);
    }
  }

  end(id: number, payload: Uint8Array): void {
    const stream = this.streamFor(id, 'END');
    if (stream === undefined) return;
    if (stream.remoteDone) throw new ProtocolError(ProtocolErrorCode.STREAM_STATE, `END on stream ${id} after the peer ended it`);
    let trailer;
    try {
      trailer = decodeEnd(payload, this.limits);
    } catch (error) {
      const [status, message] = streamErrorOf(error, 'END');
      stream.failLocally(status, message);
      return;
    }
    stream.receiveEnd(trailer);
  }

  reset(flags: number, id: number, payload: Uint8Array): void {
    const stream = this.streamFor(id, 'RESET');
    if (stream === undefined) return;
    // the peer's own call: its slot moves to the cancelled pool while the handler runs (or counts, the pool full)
    if (!stream.outbound) this.acceptor.peerReset(stream);
    let status: Status = Status.INTERNAL;
    let message = 'the peer reset the stream with a malformed RESET';
    try {
      ({ status, message } = decodeReset(payload));
    } catch {
      // keep the generic reason: the stream ends either way
    }
    const refused = (flags & Flag.REFUSED) !== 0 && stream.outbound;
    stream.receiveReset(status, message, refused);
  }

  /** CREDIT for a stream (the session has read it and handles stream 0's); `messages`: message credit. */
  credit(id: number, increment: number, messages: boolean): void {
    const stream = this.streamFor(id, 'CREDIT');
    if (stream === undefined) return;
    if (!stream.addSendCredit(increment, MAX_WINDOW, messages)) {
      throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, `CREDIT pushes the ${messages ? 'message ' : ''}window of stream ${id} past 2^31-1`);
    }
  }

  /** Looks up the stream a frame is for; undefined for a stream that has closed. Throws for one never opened. */
  private streamFor(id: number, what: string): Stream | undefined {
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      // a stream of ours still waiting for a concurrency slot: the peer cannot know its id
      if (!stream.opened) throw new ProtocolError(ProtocolErrorCode.STREAM_NOT_OPEN, `${what} for stream ${id}, which was never opened`);
      return stream;
    }
    if (this.opener.isOurs(id) ? this.opener.isUnused(id) : this.acceptor.isUnused(id)) {
      throw new ProtocolError(ProtocolErrorCode.STREAM_NOT_OPEN, `${what} for stream ${id}, which was never opened`);
    }
    return undefined;
  }
}
