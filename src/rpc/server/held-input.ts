/**
 * What arrives on an incoming call's stream while its `authorize` answer is pending (authorize.ts): held as it came,
 * copied, neither decoded nor validated, and with no credit returned for it (the call turned autoCredit off), so the
 * caller can send no more than the stream's initial windows; then handed to the call in order once it is allowed, or
 * dropped with the call. Knows nothing of methods or codecs.
 */
import type { Status } from '../../wire/constants.js';
import type { Stream, StreamEvents, StreamTrailer } from '../../session/stream.js';

interface HeldMessage {
  readonly bytes: Uint8Array;
  readonly charge: number;
}

export class HeldInput implements StreamEvents {
  private messages: HeldMessage[] = [];
  private trailer: StreamTrailer | undefined;

  constructor(
    private readonly stream: Stream,
    /** The call that gets it all once allowed; a reset is passed on at once. */
    private readonly call: StreamEvents,
    /** An upload: its body follows its request as raw chunks, so the stream reads them so (framing, not trust). */
    private readonly rawAfterFirst: boolean,
  ) {}

  onMessage(bytes: Uint8Array, charge: number): void {
    this.messages.push({ bytes: bytes.slice(), charge }); // the bytes are valid only during this call
    if (this.rawAfterFirst) this.stream.rawInbound = true;
  }

  onEnd(trailer: StreamTrailer): void {
    this.trailer = trailer;
  }

  onReset(status: Status, message: string, refused: boolean): void {
    this.drop();
    this.call.onReset(status, message, refused);
  }

  /** What was held goes: the call ended before it was allowed. */
  drop(): void {
    this.messages = [];
    this.trailer = undefined;
  }

  /**
   * Hands what was held to the call (whose stream events point at it again), as the stream would have delivered it:
   * `autoCredit`, the call's own setting, says whether the stream returns the credit of each message now (single-request
   * kinds) or the call does as its handler reads (streams). Stops once the stream has closed (the call failed).
   */
  replay(autoCredit: boolean): void {
    const { messages, trailer } = this;
    this.drop();
    const stream = this.stream;
    for (const { bytes, charge } of messages) {
      if (stream.closed) return;
      if (autoCredit) stream.consume(charge, true); // single-request kinds: messages, never raw chunks
      this.call.onMessage(bytes, charge);
    }
    if (trailer !== undefined && !stream.closed) this.call.onEnd(trailer);
  }
}
