/**
 * One stream of a session: what it sends and its send credit (what cannot be written at once waits in send-queue.ts),
 * the delivery and credit of what it receives (a message that arrives in several frames is put together by
 * reassembly.ts), and its lifecycle. Carries opaque message bytes and trailers; knows nothing of methods, codecs or
 * handlers. Why this file is past ~500 lines (about 641): it is one job, the stream state machine, whose two tables
 * below are changed by both the send and the receive path; every transition lives next to the table it follows, and
 * what could leave has left (queued sends: send-queue.ts, partly received messages: reassembly.ts, the peer's frames:
 * stream-frames.ts, opening: stream-opener.ts / stream-acceptor.ts; what issue 12 added is wiring: the tuned
 * window's hooks (window-tuner.ts decides) and bulk DATA taken in pieces (data-pieces.ts checks); issue 13's, the fields
 * stats and inspection read and a credit stall's two transitions (session-counters.ts counts)). Splitting send
 * from receive would put the two halves of one state table in two files.
 *
 * Lifecycle: one StreamState, changed only by the transitions below. Each side ends on its own, as in HTTP/2, with
 * its last frame (END, or DATA with END_STREAM); a reset ends both. Our last frame may have to wait behind credit:
 * the ENDING states say it is queued (we may send nothing more), HALF_CLOSED_LOCAL that it is written.
 *
 * | state                     | we may send | the peer may send | OPEN on the wire |
 * |---------------------------|-------------|-------------------|------------------|
 * | QUEUED (ours only)        | yes         | -                 | no               |
 * | QUEUED_ENDING (ours only) | no          | -                 | no               |
 * | OPEN                      | yes         | yes               | yes              |
 * | ENDING                    | no          | yes               | yes              |
 * | HALF_CLOSED_LOCAL         | no          | yes               | yes              |
 * | HALF_CLOSED_REMOTE        | yes         | no                | yes              |
 * | HALF_CLOSED_REMOTE_ENDING | no          | no                | yes              |
 * | CLOSED                    | no          | no                | -                |
 *
 * | state                     | event                                               | next                      |
 * |---------------------------|-----------------------------------------------------|---------------------------|
 * | QUEUED                    | a concurrency slot frees: OPEN written              | OPEN                      |
 * | QUEUED_ENDING             | a concurrency slot frees: OPEN written              | ENDING                    |
 * | QUEUED                    | our last frame queued                               | QUEUED_ENDING             |
 * | OPEN                      | our last frame queued (or written at once, which    | ENDING                    |
 * |                           | passes through ENDING within the call)              |                           |
 * | HALF_CLOSED_REMOTE        | our last frame queued (or written at once)          | HALF_CLOSED_REMOTE_ENDING |
 * | ENDING                    | our last frame written                              | HALF_CLOSED_LOCAL         |
 * | HALF_CLOSED_REMOTE_ENDING | our last frame written                              | CLOSED                    |
 * | OPEN                      | the peer's last frame read                          | HALF_CLOSED_REMOTE        |
 * | ENDING                    | the peer's last frame read                          | HALF_CLOSED_REMOTE_ENDING |
 * | HALF_CLOSED_LOCAL         | the peer's last frame read                          | CLOSED                    |
 * | HALF_CLOSED_LOCAL         | entered with resetAfterEnd on                       | CLOSED (RESET CANCELLED)  |
 * | any but CLOSED            | RESET read or written, a limit, connection lost     | CLOSED (RESET written     |
 * |                           |                                                     | unless OPEN never was)    |
 *
 * DATA or END read while the peer may not send is a connection error (GW_ERR_STREAM_STATE): the peer broke its own
 * promise (stream-frames.ts checks it). Frames for a CLOSED stream are ignored (it has left the session's table).
 *
 * Credit (PROTOCOL.md §6). A stream counts bytes and messages both ways. By default it returns credit as it delivers
 * (unary calls, whose single message is consumed at once); an owner that queues what it receives (message streams,
 * bulk bodies) sets `autoCredit = false` and calls `consume()` as the application takes each item, so a slow reader
 * holds back only its own stream. Fragments of a message are credited as they arrive while nothing delivered waits
 * to be consumed, so a message larger than the window always completes, yet a reader that has stopped holds at most
 * one window plus one message.
 */
import { Flag, FrameType, Status } from '../wire/constants.js';
import { EMPTY_METADATA_BLOCK, type Metadata } from '../wire/metadata.js';
import { encodeCredit, encodeEnd, encodeReset } from '../wire/payloads.js';
import { messageTooLargeMessage } from './errors.js';
import type { PeerGuard } from './peer-guard.js';
import { Reassembly, type ReassemblyLimits, type ReassemblyMemory } from './reassembly.js';
import { dataFloorFor, highWaterFor, QueueStep, SendQueue, SMALL_MESSAGE_BYTES, WriteResult, type QueueMemory, type QueueOutput } from './send-queue.js';
import { bulkCreditBatch, type TunedWindow, type WindowTuner } from './window-tuner.js';
import { creditStallBegins, creditStallEnds, type SessionCounters } from './session-counters.js';

export interface StreamTrailer {
  status: Status;
  message: string;
  metadata: Metadata;
}

/** What a stream tells its owner (the rpc layer). Payload bytes are valid only during the call. */
export interface StreamEvents {
  /**
   * A message arrived (or, with `rawInbound`, a chunk of bytes). `charge` is what `consume()` must be given once the
   * application has taken it (only when `autoCredit` is off).
   */
  onMessage(bytes: Uint8Array, charge: number): void;
  /** The peer finished its side: cleanly (status OK) or with an error status in its trailer. */
  onEnd(trailer: StreamTrailer): void;
  /** The stream was aborted: by a RESET from the peer, by a limit, or by the loss of the connection. */
  onReset(status: Status, message: string, refused: boolean): void;
  /** What was queued to send has gone down to the high-water mark after a send returned false. */
  onWritable?(): void;
}

/**
 * Where a stream writes: the session's outbox. DATA goes through writeData, which spends connection credit; a stream
 * never touches that credit itself.
 */
export interface StreamOutput extends QueueOutput {
  /** False while the transport has asked us to wait: nothing may bypass the scheduler then. */
  readonly writable: boolean;
  /** Connection credit the peer has granted and we have not spent. */
  readonly connectionCredit: number;
  /** The stream has frames to write once credit allows. */
  wake(stream: Stream): void;
}

/** The part of the session a stream calls back into. */
export interface StreamHost extends ReassemblyLimits {
  /** The connection's memory: what partly received messages and queued sends reserve (connection-memory.ts). */
  readonly memory: ReassemblyMemory & QueueMemory & { readonly queuedSendTotal: number };
  /** The stream is CLOSED; `opened` says whether its OPEN was ever written (false: it closed while queued). */
  streamClosed(stream: Stream, opened: boolean): void;
  /** Counts the resets the peer provokes (MadeYouReset). */
  readonly guard: PeerGuard;
  /** Grows the receive window of bulk bodies as the connection needs (window-tuner.ts). */
  readonly windowTuner: WindowTuner;
  /** What the connection counts: credit stalls are counted as they begin and end (session-counters.ts). */
  readonly counters: SessionCounters;
}

/** The states of the header's table. Their order matters: `opened` is >= OPEN, `remoteDone` >= HALF_CLOSED_REMOTE. */
const enum StreamState {
  QUEUED,
  QUEUED_ENDING,
  OPEN,
  ENDING,
  HALF_CLOSED_LOCAL,
  HALF_CLOSED_REMOTE,
  HALF_CLOSED_REMOTE_ENDING,
  CLOSED,
}

const STATE_NAMES = ['queued', 'queued-ending', 'open', 'ending', 'half-closed-local', 'half-closed-remote', 'half-closed-remote-ending', 'closed'];

const NO_EVENTS: StreamEvents = { onMessage() {}, onEnd() {}, onReset() {} };
const EMPTY = new Uint8Array(0);

export class Stream {
  events: StreamEvents = NO_EVENTS;
  /** Where this stream is in its lifecycle (the table in the module header). */
  private state: StreamState;
  /** Frames waiting for credit or their turn; created on first use (most calls never need it), dropped when empty. */
  private queue: SendQueue | undefined;
  /** A message arriving in several frames; created when the first such message arrives (most calls never need it). */
  private reassembly: Reassembly | undefined;
  private recvUnacked = 0;
  private recvMessagesUnacked = 0;
  /** A bulk body's receive window, grown and shrunk by the window tuner as credit is returned; undefined otherwise. */
  private tuned: TunedWindow | undefined;
  /** Items delivered to the owner and not yet consumed (autoCredit off). */
  private unconsumed = 0;
  /** A send returned false: the sender waits for onWritable. */
  private wantsWritable = false;
  /** sendChunk was used: this stream carries a bulk body, which may queue more while credit allows (highWaterFor). */
  private bulkSending = false;
  /** Credit the peer has granted us on this stream. */
  sendWindow: number;
  /** Message credit the peer has granted us on this stream. */
  sendMessageWindow: number;
  /** Smallest DATA frame we send that is not the rest of an item (send-queue.ts): set by the peer's first window. */
  readonly sendFloor: number;
  /** Credit we have granted the peer on this stream and it has not used. */
  recvWindow: number;
  /** Message credit we have granted the peer on this stream and it has not used. */
  recvMessageWindow: number;
  /** Off: credit is returned by `consume()`, when the application takes what was delivered. */
  autoCredit = true;
  /** On: DATA payloads are delivered as they arrive, as chunks of a byte stream (bulk), not reassembled messages. */
  rawInbound = false;
  /**
   * On: once our side has ended (its last frame written), a peer still sending is told to stop with RESET CANCELLED.
   * A handler's answer ends the call, and a stream it no longer reads must not keep its slot.
   */
  resetAfterEnd = false;
  /** Set while this stream sits in the session's ready list or waits for connection credit: never queued twice. */
  scheduled = false;
  /** For a stream the peer opened: its owner (the handler) is done; the session frees the slot once it is closed. */
  ownerReleased = false;
  /** Counts DATA received and credit granted by the peer: a watchdog that sees it still knows the peer is moving. */
  progress = 0;
  // The four times below start undefined, not -1 or 0: V8 boxes a number field that has ever held a fraction in every
  // object made after that (a 16-byte heap number per field per stream, so per call), while a field that starts
  // undefined holds a number boxed only when one is stored (as a stall begins or ends).
  /** Since when (performance.now()) our queued bytes wait for the peer's credit; undefined while they do not (session-counters.ts). */
  creditBlockedSince: number | undefined = undefined;
  /** Time this stream's credit stalls that have ended lasted, in ms (undefined: none yet). */
  creditBlockedMs: number | undefined = undefined;
  /** When the stream was made (performance.now()), while `inspect` is on (counters.timeStreams); else undefined. */
  readonly openedAt: number | undefined;
  /** Since when the stall watch (stall-watch.ts) has seen our receive window used up by a reader that took nothing. */
  receiveFullSince: number | undefined = undefined;
  /** The stall watch has logged this stream's stall. */
  stallReported = false;

  constructor(
    private readonly host: StreamHost,
    private readonly output: StreamOutput,
    readonly id: number,
    readonly outbound: boolean,
    sendWindow: number,
    private recvWindowSize: number,
    sendMessageWindow: number,
    private readonly recvMessageWindowSize: number,
  ) {
    this.state = outbound ? StreamState.QUEUED : StreamState.OPEN;
    this.openedAt = host.counters.timeStreams ? performance.now() : undefined;
    this.sendWindow = sendWindow;
    this.sendFloor = dataFloorFor(sendWindow);
    this.recvWindow = recvWindowSize;
    this.sendMessageWindow = sendMessageWindow;
    this.recvMessageWindow = recvMessageWindowSize;
  }

  /** True while bytes of ours wait for the peer's credit: a stall of this stream is then the peer's. */
  get sendBlocked(): boolean {
    return this.queue !== undefined && this.queue.holdsData && this.opened;
  }

  /** True when the next frame this stream would write is small (a message or our END): the outbox's latency class. */
  get sendsSmallNext(): boolean {
    return this.queue !== undefined && this.queue.nextIsSmall;
  }

  /** True once OPEN is on the wire (always true for streams the peer opened), and after that. */
  get opened(): boolean {
    return this.state >= StreamState.OPEN;
  }

  get closed(): boolean {
    return this.state === StreamState.CLOSED;
  }

  /** For inspection: where the stream is in its lifecycle (the table in the module header), in words. */
  get stateName(): string {
    return STATE_NAMES[this.state]!;
  }

  /** For inspection: bytes queued to send (waiting for credit or their turn), and items delivered and not yet consumed. */
  get queuedBytes(): number {
    return this.queue?.queuedBytes ?? 0;
  }

  get unconsumedItems(): number {
    return this.unconsumed;
  }

  /** True when we may still send on this stream. */
  get writable(): boolean {
    const state = this.state;
    return state === StreamState.OPEN || state === StreamState.HALF_CLOSED_REMOTE || state === StreamState.QUEUED;
  }

  /** True once the peer has ended its side (or the stream is closed): it may send nothing more. */
  get remoteDone(): boolean {
    return this.state >= StreamState.HALF_CLOSED_REMOTE;
  }

  /**
   * Queues one message; with `endStream` it is the last thing we send (status OK, no trailer metadata). Returns false
   * once more than SEND_HIGH_WATER_BYTES (counting 64 bytes per queued message) wait for credit: the sender should
   * then wait for `onWritable`.
   * The bytes are not copied when they are large: do not modify them afterwards.
   */
  sendMessage(bytes: Uint8Array, endStream = false): boolean {
    if (!this.writable) throw new Error(`stream ${this.id}: cannot send after the stream ended`);
    const flags = endStream ? Flag.MESSAGE_END | Flag.END_STREAM : Flag.MESSAGE_END;
    if (endStream) this.endLocal();
    const n = bytes.length;
    const output = this.output;
    if (
      this.queue === undefined &&
      this.opened &&
      output.writable &&
      this.sendMessageWindow > 0 &&
      n <= SMALL_MESSAGE_BYTES &&
      n <= this.sendWindow &&
      n <= output.dataAllowance
    ) {
      this.sendWindow -= n;
      this.sendMessageWindow--;
      output.writeData(flags, this.id, bytes);
      if (endStream) this.lastFrameWritten();
      return true;
    }
    return this.enqueue(bytes, flags);
  }

  /** Queues bytes of a bulk body: no message boundary, fragmented as credit allows. Returns as sendMessage. */
  sendChunk(bytes: Uint8Array): boolean {
    if (!this.writable) throw new Error(`stream ${this.id}: cannot send after the stream ended`);
    this.bulkSending = true;
    if (bytes.length > 0) return this.enqueue(bytes, 0);
    if (this.belowHighWater()) return true;
    this.wantsWritable = true; // nothing queued, but the high-water mark fell with the credit: wait as for a chunk
    return false;
  }

  /** Ends our side cleanly (status OK) after everything queued: the receiver's EOF. */
  endClean(): void {
    if (!this.writable) return;
    this.endLocal();
    if (this.queue === undefined && this.opened) {
      this.output.writeData(Flag.END_STREAM, this.id, EMPTY);
      this.lastFrameWritten();
      return;
    }
    this.enqueue(EMPTY, Flag.END_STREAM);
  }

  private enqueue(bytes: Uint8Array, flags: number): boolean {
    // kept only once something is queued in it: a refused first push leaves no empty queue for markOpened to wake
    const queue = this.queue ?? new SendQueue(this.host.memory, this.opened);
    const refusal = queue.pushData(bytes, flags);
    if (refusal !== undefined) {
      // our own memory budget refused what we send: this stream fails (RESET, onReset: the sender sees the call fail
      // through its usual path), never the connection, and it is not the peer's doing, so no provoked reset is charged
      // (that would throw out of this send once past the peer's reset budget)
      this.abort(Status.RESOURCE_EXHAUSTED, refusal);
      return true;
    }
    this.queue = queue;
    if (this.opened) this.output.wake(this);
    if (queue.within(this.highWater())) return true;
    this.wantsWritable = true;
    return false;
  }

  /** Ends our side with a trailer. */
  end(status: Status = Status.OK, message = '', metadataBlock: Uint8Array = EMPTY_METADATA_BLOCK): void {
    if (!this.writable) return;
    this.endLocal();
    const payload = encodeEnd(status, message, metadataBlock);
    if (this.queue === undefined && this.opened) {
      this.output.writeFrame(FrameType.END, 0, this.id, payload);
      this.lastFrameWritten();
      return;
    }
    (this.queue ??= new SendQueue(this.host.memory, this.opened)).pushEnd(payload);
    if (this.opened) this.output.wake(this);
  }

  /** Aborts the stream in both directions and tells the peer why. Queued frames are dropped. Idempotent. */
  reset(status: Status, message: string): void {
    if (this.state === StreamState.CLOSED) return;
    if (this.opened) this.output.writeFrame(FrameType.RESET, 0, this.id, encodeReset(status, message));
    this.close();
  }

  /** Called by the stream opener when OPEN has been written. */
  markOpened(): void {
    this.state = this.state === StreamState.QUEUED_ENDING ? StreamState.ENDING : StreamState.OPEN;
    const queue = this.queue;
    if (queue === undefined) return;
    // what waited for a slot now waits for the peer's credit: from here on it counts against the memory budgets
    const refusal = queue.charge();
    if (refusal !== undefined) {
      this.abort(Status.RESOURCE_EXHAUSTED, refusal);
      return;
    }
    this.output.wake(this);
  }

  /** Writes the next frame of this stream within the available credit. */
  writeNext(): WriteResult {
    const queue = this.queue;
    if (queue === undefined || this.state === StreamState.CLOSED) return WriteResult.IDLE;
    const step = queue.writeNext(this.id, this, this.output);
    if (queue.empty) this.queue = undefined;
    if (step === QueueStep.STREAM_BLOCKED) {
      if (this.creditBlockedSince === undefined) creditStallBegins(this, this.host.counters); // counted once per stall
      return WriteResult.IDLE;
    }
    if (step === QueueStep.CONNECTION_BLOCKED) return WriteResult.CONNECTION_BLOCKED;
    if (this.creditBlockedSince !== undefined) creditStallEnds(this, this.host.counters); // credit came: it wrote again
    if (step === QueueStep.WROTE_LAST) {
      this.lastFrameWritten();
      return WriteResult.IDLE;
    }
    if (this.wantsWritable && this.belowHighWater()) {
      this.wantsWritable = false;
      try {
        this.events.onWritable?.();
      } catch (error) {
        this.ownerFailed(error);
        return WriteResult.IDLE;
      }
    }
    return this.queue !== undefined ? WriteResult.MORE : WriteResult.IDLE;
  }

  /** The peer granted more credit (bytes, or with `messages` messages); false if the window would pass its maximum. */
  addSendCredit(increment: number, maxWindow: number, messages = false): boolean {
    this.progress++;
    if (messages) {
      if (this.sendMessageWindow + increment > maxWindow) return false;
      this.sendMessageWindow += increment;
    } else {
      if (this.sendWindow + increment > maxWindow) return false;
      this.sendWindow += increment;
    }
    if (this.queue !== undefined && this.opened) this.output.wake(this);
    return true;
  }

  /**
   * A DATA frame arrived (stream-frames.ts has checked the stream's state and both credits). Reassembles messages, or
   * with `rawInbound` passes the bytes on as they are.
   */
  receiveData(flags: number, payload: Uint8Array): void {
    const n = payload.length;
    this.progress++;
    const final = (flags & Flag.END_STREAM) !== 0;
    this.recvWindow -= n;
    if (this.tuned !== undefined) this.tuned.dataArrived(this.recvWindow); // window-tuner.ts
    if (this.rawInbound) {
      if (n > 0) this.deliver(payload, n, false, final);
    } else if (flags & Flag.MESSAGE_END) {
      this.recvMessageWindow--;
      const reassembly = this.reassembly;
      if (reassembly?.holding === true) {
        const refusal = reassembly.tooLarge(n);
        if (refusal !== undefined) {
          this.failLocally(Status.RESOURCE_EXHAUSTED, refusal);
          return;
        }
        const charge = n + reassembly.takeUncredited();
        this.deliver(reassembly.complete(payload), charge, true, final);
      } else if (n > this.host.maxMessageBytes) {
        this.failLocally(Status.RESOURCE_EXHAUSTED, messageTooLargeMessage(n, this.host.maxMessageBytes));
        return;
      } else {
        this.deliver(payload, n, true, final);
      }
    } else if (n > 0) {
      const reassembly = (this.reassembly ??= new Reassembly(this.host));
      const refusal = reassembly.hold(payload);
      if (refusal !== undefined) {
        // the process-wide budget, full of other connections' bytes, is no reset this peer provoked: not charged
        if (reassembly.refusedByShared) this.abort(Status.RESOURCE_EXHAUSTED, refusal);
        else this.failLocally(Status.RESOURCE_EXHAUSTED, refusal);
        return;
      }
      if (this.unconsumed > 0) reassembly.creditLater(n);
      else if (!final) this.returnCredit(n);
    }
    if (this.state === StreamState.CLOSED) return; // onMessage may have reset the stream
    if (final) this.receiveEnd({ status: Status.OK, message: '', metadata: EMPTY_TRAILER_METADATA });
  }

  /**
   * A DATA frame of `n` bytes on a bulk stream (rawInbound) begins, its payload to come in pieces (data-pieces.ts has
   * checked it as stream-frames.ts checks a whole one): its credit is taken now, each piece is delivered as it comes.
   */
  receivePiecesStart(n: number): void {
    this.progress++;
    this.recvWindow -= n;
    if (this.tuned !== undefined) this.tuned.dataArrived(this.recvWindow); // as receiveData
  }

  /** The next piece of that frame; `flags` (the frame's) with its last piece, else 0. */
  receivePiece(piece: Uint8Array, flags: number): void {
    const final = (flags & Flag.END_STREAM) !== 0;
    this.deliver(piece, piece.length, false, final);
    if (final && this.state !== StreamState.CLOSED) this.receiveEnd({ status: Status.OK, message: '', metadata: EMPTY_TRAILER_METADATA });
  }

  /**
   * The owner's application took an item delivered with `charge` (autoCredit off): its credit goes back to the peer,
   * and so does that of a partly received message held back meanwhile.
   */
  consume(charge: number, message: boolean): void {
    if (this.unconsumed === 0) return;
    this.unconsumed--;
    this.returnCredit(charge);
    if (message) this.returnMessageCredit();
    if (this.unconsumed === 0 && this.reassembly !== undefined) this.returnCredit(this.reassembly.takeUncredited());
  }

  /** The owner's reader asked for the next item and none was there: it waits for data (the window tuner's signal). */
  readerWaits(): void {
    if (this.tuned !== undefined) this.tuned.readerWaits();
  }

  /**
   * Raises the receive window of a stream the peer opened (a bulk upload): the peer learns it by CREDIT. From then on
   * the window tuner may grow it further.
   */
  growReceiveWindow(size: number): void {
    if (this.remoteDone) return;
    if (size > this.recvWindowSize) {
      const increment = size - this.recvWindowSize;
      this.recvWindowSize = size;
      this.recvWindow += increment;
      this.output.writeFrame(FrameType.CREDIT, 0, this.id, encodeCredit(increment));
    }
    this.tuneReceiveWindow();
  }

  /** A bulk body arrives on this stream: the window tuner may grow its receive window (window-tuner.ts). Once. */
  tuneReceiveWindow(): void {
    if (this.tuned === undefined && this.state !== StreamState.CLOSED) this.tuned = this.host.windowTuner.track(this.recvWindowSize);
  }

  private deliver(bytes: Uint8Array, charge: number, message: boolean, final: boolean): void {
    if (!this.autoCredit) this.unconsumed++;
    else if (!final) {
      this.returnCredit(charge);
      if (message) this.returnMessageCredit();
    }
    try {
      this.events.onMessage(bytes, charge);
    } catch (error) {
      this.ownerFailed(error);
    }
  }

  /** END arrived (or DATA with END_STREAM); in the middle of a message, the stream fails. */
  receiveEnd(trailer: StreamTrailer): void {
    if (this.reassembly?.holding === true) {
      this.failLocally(Status.INTERNAL, 'the peer ended the stream in the middle of a message');
      return;
    }
    // close before telling the owner, so that it sees a closed stream when both sides are done
    this.endRemote();
    try {
      this.events.onEnd(trailer);
    } catch (error) {
      this.ownerFailed(error);
    }
  }

  /** RESET arrived from the peer, or the session is failing every stream. */
  receiveReset(status: Status, message: string, refused: boolean): void {
    if (this.state === StreamState.CLOSED) return;
    this.close();
    try {
      this.events.onReset(status, message, refused);
    } catch {
      // the stream is gone either way; an owner that throws here has nothing left to fail
    }
  }

  /**
   * Fails the stream because of something the peer sent on it: the peer gets a RESET, the owner an onReset. Counted
   * against the peer's reset budget first (MadeYouReset): past it, the guard throws and the connection fails instead.
   */
  failLocally(status: Status, message: string): void {
    if (this.state === StreamState.CLOSED) return;
    this.host.guard.resetProvoked();
    this.abort(status, message);
  }

  /** Resets the stream and tells the owner. */
  private abort(status: Status, message: string): void {
    this.reset(status, message);
    try {
      this.events.onReset(status, message, false);
    } catch {
      // as in receiveReset
    }
  }

  /** The owner's event handler threw: a bug on this side, so only this stream fails (INTERNAL), never the connection. */
  private ownerFailed(error: unknown): void {
    if (this.state === StreamState.CLOSED) return;
    this.abort(Status.INTERNAL, `the call failed on the receiving side: ${(error as Error)?.message ?? String(error)}`);
  }

  private belowHighWater(): boolean {
    return this.queue === undefined || this.queue.within(this.highWater());
  }

  /** How much may wait before a sender is asked to: more for a bulk body while credit lets it out (send-queue.ts). */
  private highWater(): number {
    // before OPEN is written nothing leaves: a queued stream pulls no more than any sender
    const credit = Math.min(this.sendWindow, this.output.connectionCredit);
    return highWaterFor(this.bulkSending && this.opened, credit, this.host.memory.queuedSendTotal);
  }

  /** Stream credit for bytes consumed or buffered; none once the peer has said it sends no more. */
  private returnCredit(n: number): void {
    if (this.remoteDone || n === 0) return;
    this.recvUnacked += n;
    // batch credit: one CREDIT frame per half window, not one per message; a bulk body's per quarter window, so the
    // sender gets credit back while three quarters are still in flight and a small window does not run the pipe dry,
    // and at most per MAX_BULK_CREDIT_BATCH, so a grown window is nearly all in flight (window-tuner.ts)
    const tuned = this.tuned;
    if (this.recvUnacked >= (tuned === undefined ? this.recvWindowSize >>> 1 : bulkCreditBatch(this.recvWindowSize))) {
      // a bulk body's window may grow (this CREDIT carries more) or shrink (it carries less, maybe nothing)
      const change = tuned === undefined ? 0 : tuned.credit(this.recvUnacked, this.recvWindowSize);
      const increment = this.recvUnacked + change;
      this.recvWindowSize += change;
      this.recvWindow += increment;
      if (increment > 0) this.output.writeFrame(FrameType.CREDIT, 0, this.id, encodeCredit(increment));
      this.recvUnacked = 0;
    }
  }

  private returnMessageCredit(): void {
    if (this.remoteDone) return;
    if (++this.recvMessagesUnacked >= Math.max(1, this.recvMessageWindowSize >>> 1)) {
      this.recvMessageWindow += this.recvMessagesUnacked;
      this.output.writeFrame(FrameType.CREDIT, Flag.MESSAGES, this.id, encodeCredit(this.recvMessagesUnacked));
      this.recvMessagesUnacked = 0;
    }
  }

  // ---------------------------------------------------------------- transitions (the table in the module header)

  /** Our last frame is queued, or about to be written at once: we may send nothing more. */
  private endLocal(): void {
    const state = this.state;
    if (state === StreamState.OPEN) this.state = StreamState.ENDING;
    else if (state === StreamState.HALF_CLOSED_REMOTE) this.state = StreamState.HALF_CLOSED_REMOTE_ENDING;
    else if (state === StreamState.QUEUED) this.state = StreamState.QUEUED_ENDING;
  }

  /** Our last frame is on its way (in an ENDING state). */
  private lastFrameWritten(): void {
    if (this.state === StreamState.HALF_CLOSED_REMOTE_ENDING) {
      this.close();
      return;
    }
    this.state = StreamState.HALF_CLOSED_LOCAL;
    if (this.resetAfterEnd) this.reset(Status.CANCELLED, 'the call is over: the handler has answered');
  }

  /** The peer's last frame was read (stream-frames.ts has checked that the peer still may send). */
  private endRemote(): void {
    const state = this.state;
    if (state === StreamState.OPEN) this.state = StreamState.HALF_CLOSED_REMOTE;
    else if (state === StreamState.ENDING) this.state = StreamState.HALF_CLOSED_REMOTE_ENDING;
    else if (state === StreamState.HALF_CLOSED_LOCAL) this.close();
  }

  private close(): void {
    const state = this.state;
    if (state === StreamState.CLOSED) return;
    this.state = StreamState.CLOSED;
    if (this.creditBlockedSince !== undefined) creditStallEnds(this, this.host.counters);
    this.reassembly?.release();
    this.tuned?.release(); // a grown window's reservation goes back
    this.queue?.drop(); // what still waits (a reset) is dropped: its memory goes back
    this.queue = undefined;
    this.host.streamClosed(this, state >= StreamState.OPEN);
  }
}

const EMPTY_TRAILER_METADATA: Metadata = Object.freeze(Object.create(null) as Metadata);
