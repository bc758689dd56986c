/**
 * Opening our streams: the ids we give them (odd for the dialer, even for the acceptor), the peer's limit on how many
 * may be open at once, the queue of streams waiting for one of those slots, and the OPEN frame, which carries the
 * deadline left when it is written. Knows nothing of the stream table, of the peer's streams or of teardown: the
 * session puts what it opens in its table, says when one of ours has closed, and fails the queue when it stops.
 */
import { FrameType, MAX_STREAM_ID, Status } from '../wire/constants.js';
import type { HelloSettings } from '../wire/hello.js';
import { openPayloadLength, writeOpenPayload } from '../wire/payloads.js';
import { SessionError } from './errors.js';
import { Stream, type StreamHost, type StreamOutput } from './stream.js';

export interface OpenStreamInit {
  /** Relative deadline in ms sent to the peer; 0 or undefined = none. */
  deadlineMs?: number;
  /** Metadata block from encodeMetadata. */
  metadataBlock?: Uint8Array;
  /**
   * Receive window to grant on this stream, for a bulk body (a download): the window tuner may grow it as the
   * connection needs (window-tuner.ts). Default: the session's initialStreamWindow, never tuned.
   */
  window?: number;
}

export interface StreamOpenerOptions {
  initialStreamWindow: number;
  initialMessageWindow: number;
}

/** The part of the outbox OPEN is written through: encoded in place, right after its header. */
export interface OpenOutput extends StreamOutput {
  readonly peerMaxFrameBytes: number;
  beginFrame(type: number, flags: number, streamId: number, length: number): number;
  readonly target: Uint8Array;
}

/** A stream of ours waiting for a slot, with what its OPEN will say. */
interface QueuedOpen {
  stream: Stream;
  method: Uint8Array;
  init: OpenStreamInit;
  queuedAt: number;
}

export class StreamOpener {
  /** The id our next stream gets. */
  private nextId: number;
  /** Our streams whose OPEN is written and that have not closed: what the peer's limit counts. */
  private active = 0;
  private readonly queue: QueuedOpen[] = [];
  /** The peer's settings, once its HELLO has been accepted; until then every stream waits in the queue. */
  private peer: HelloSettings | undefined;

  constructor(
    dialer: boolean,
    private readonly options: StreamOpenerOptions,
    private readonly host: StreamHost,
    private readonly output: OpenOutput,
    /** True while OPEN may be written: the session is open (handshake done, no GOAWAY either way). */
    private readonly mayOpen: () => boolean,
  ) {
    this.nextId = dialer ? 1 : 2;
  }

  /** True once every stream id of ours has been given out: the connection can open no more streams. */
  get idsUsedUp(): boolean {
    return this.nextId > MAX_STREAM_ID;
  }

  /** True for an id of our parity (the peer may not open it). */
  isOurs(id: number): boolean {
    return id % 2 === this.nextId % 2;
  }

  /** The id our next stream gets: it grows with every stream we open (what idle detection compares, not a counter). */
  get nextStreamId(): number {
    return this.nextId;
  }

  /** True for an id of ours that no stream has been given yet. */
  isUnused(id: number): boolean {
    return id >= this.nextId;
  }

  /**
   * Makes a stream of ours and writes its OPEN, or queues it until the handshake is done and the peer's limit allows
   * one more. Throws SessionError for an OPEN the peer could not take, TypeError for a bad method name.
   */
  open(method: Uint8Array, init: OpenStreamInit): Stream {
    const id = this.nextId;
    this.nextId += 2;
    const length = openPayloadLength(method, init.metadataBlock); // throws for a bad method name
    const peer = this.peer;
    if (peer !== undefined && length > this.output.peerMaxFrameBytes) {
      throw new SessionError(Status.RESOURCE_EXHAUSTED, tooLargeMessage(length, this.output.peerMaxFrameBytes), true);
    }
    if (peer !== undefined && peer.maxConcurrentStreams === 0) {
      throw new SessionError(Status.UNAVAILABLE, 'the peer accepts no streams (MAX_CONCURRENT_STREAMS is 0)', true);
    }
    const stream = new Stream(
      this.host, this.output, id, true,
      peer?.initialStreamWindow ?? 0, init.window ?? this.options.initialStreamWindow,
      peer?.initialMessageWindow ?? 0, this.options.initialMessageWindow,
    );
    if (init.window !== undefined) stream.tuneReceiveWindow();
    // first come, first opened: with calls already queued (a freed slot opens them in a microtask), a new one waits
    if (this.queue.length === 0 && this.mayOpen() && this.active < this.peerLimit()) {
      this.writeOpen(stream, method, init, length);
    } else {
      this.queue.push({ stream, method, init, queuedAt: performance.now() });
      if (this.mayOpen() && this.active < this.peerLimit()) this.scheduleOpenQueued();
    }
    return stream;
  }

  /**
   * The peer's HELLO was accepted: streams queued meanwhile take its windows, and fail at once if it accepts none.
   * They are opened by openQueued(), once the session has admitted the peer.
   */
  start(peer: HelloSettings): void {
    this.peer = peer;
    for (const { stream } of this.queue) {
      stream.sendWindow = peer.initialStreamWindow;
      stream.sendMessageWindow = peer.initialMessageWindow;
    }
    if (peer.maxConcurrentStreams === 0) this.failQueued('the peer accepts no streams (MAX_CONCURRENT_STREAMS is 0)');
  }

  private openScheduled = false;
  private scheduleOpenQueued(): void {
    if (this.openScheduled) return;
    this.openScheduled = true;
    queueMicrotask(this.openQueuedLater);
  }
  private readonly openQueuedLater = (): void => {
    this.openScheduled = false;
    this.openQueued();
  };

  /** Writes the OPEN of queued streams while the peer's limit allows. */
  openQueued(): void {
    while (this.queue.length > 0 && this.mayOpen() && this.active < this.peerLimit()) {
      const { stream, method, init, queuedAt } = this.queue.shift()!;
      const length = openPayloadLength(method, init.metadataBlock);
      if (length > this.output.peerMaxFrameBytes) {
        stream.receiveReset(Status.RESOURCE_EXHAUSTED, tooLargeMessage(length, this.output.peerMaxFrameBytes), true);
        continue;
      }
      this.writeOpen(stream, method, lessTimeQueued(init, queuedAt), length);
    }
  }

  /** A stream of ours closed: its slot frees for the next queued one, or (never opened) it leaves the queue. */
  closed(stream: Stream, opened: boolean): void {
    if (opened) {
      this.active--;
      // in a microtask, not now: when one AbortSignal cancels many calls, the first cancel's freed slot must not open
      // a queued call whose own cancel is the next listener (it would reach the peer only to be reset at once)
      if (this.queue.length > 0) this.scheduleOpenQueued();
      return;
    }
    const i = this.queue.findIndex((queued) => queued.stream === stream);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** Fails every queued stream (nothing of it was sent: safe to retry elsewhere). */
  failQueued(reason: string): void {
    for (const { stream } of this.queue.splice(0)) stream.receiveReset(Status.UNAVAILABLE, reason, true);
  }

  private writeOpen(stream: Stream, method: Uint8Array, init: OpenStreamInit, length: number): void {
    this.active++;
    this.host.guard.streamOpened();
    const window = init.window === undefined || init.window === this.options.initialStreamWindow ? 0 : init.window;
    const at = this.output.beginFrame(FrameType.OPEN, 0, stream.id, length);
    writeOpenPayload(this.output.target, at, init.deadlineMs ?? 0, window, method, init.metadataBlock);
    stream.markOpened();
  }

  private peerLimit(): number {
    return this.peer?.maxConcurrentStreams ?? 0;
  }
}

function tooLargeMessage(length: number, limit: number): string {
  return `the call's OPEN frame of ${length} bytes exceeds the peer's frame limit of ${limit}; send less metadata`;
}

/** OPEN carries the budget left when it is written (PROTOCOL.md §7), not the one computed before the call was queued. */
function lessTimeQueued(init: OpenStreamInit, queuedAt: number): OpenStreamInit {
  if (init.deadlineMs === undefined || init.deadlineMs === 0) return init;
  return { ...init, deadlineMs: Math.max(1, Math.ceil(init.deadlineMs - (performance.now() - queuedAt))) };
}
