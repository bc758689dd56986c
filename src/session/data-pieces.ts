/**
 * DATA frames of bulk bodies taken piece by piece as the socket delivers them (the decoder's `pieces` option), so a
 * 64 KiB frame that straddles two 64 KiB socket reads (most of them: a frame is 64 KiB plus its header) reaches the
 * reader as two views of those reads instead of being copied into a buffer of its own. Every check a whole frame gets
 * is made at its header, with its full length, before any piece is delivered: the frame counts against the peer guard,
 * the connection window and the stream's state and window exactly as a whole one (stream-frames.ts); the connection
 * window is given back piece by piece as each is handled. Frames of any other stream (messages, a stream unknown or
 * closed) are assembled by the decoder and go the usual way. Knows nothing of what a bulk body is for.
 */
import type { DataPieces } from '../wire/decoder.js';
import type { PeerGuard } from './peer-guard.js';
import type { ReceiveBudget } from './receive-budget.js';
import type { Stream } from './stream.js';
import type { StreamFrames } from './stream-frames.js';

export class BulkDataPieces implements DataPieces {
  /** The stream the frame being read goes to; undefined between frames. */
  private stream: Stream | undefined;
  private flags = 0;

  constructor(
    private readonly frames: StreamFrames,
    private readonly budget: ReceiveBudget,
    private readonly guard: PeerGuard,
    /** False once the connection has failed: frames are no longer handled. */
    private readonly reading: () => boolean,
  ) {}

  startData(flags: number, id: number, length: number): boolean {
    if (!this.reading()) return false; // dropped whole by the session, as every frame after a failure
    const stream = this.frames.bulkStream(id);
    if (stream === undefined) return false;
    // as the session's onFrame and onData, then stream-frames' data(), in that order, for the whole frame
    this.guard.frameWithPayload();
    this.budget.takeData(length);
    this.frames.checkData(stream, flags, id, length);
    stream.receivePiecesStart(length);
    this.stream = stream;
    this.flags = flags;
    return true;
  }

  dataPiece(piece: Uint8Array, last: boolean): void {
    const stream = this.stream!;
    if (last) this.stream = undefined;
    // a stream reset meanwhile (its reader stopped) drops the rest of its frame, as a whole frame for it would be
    if (!stream.closed) stream.receivePiece(piece, last ? this.flags : 0);
    this.budget.giveBack(piece.length);
  }
}
