/**
 * One connection: the stream table (ours and the peer's, by id), the dispatch of every frame read to one handler per
 * frame type, and the phases below (a graceful close drains, a failure takes the one teardown path). The jobs around
 * it have their own modules: handshake.ts (HELLO and admission), stream-opener.ts (our streams: their ids, the peer's
 * concurrency limit and the queue waiting for it), stream-acceptor.ts (the peer's streams: its ids, our limit,
 * refusals), stream-frames.ts (DATA, END, RESET and CREDIT for one stream: the peer's promises, then the stream),
 * goaway.ts (what our GOAWAY says and what the peer's said), outbox.ts (everything written, and the connection's send
 * credit), receive-budget.ts (what the peer may send), connection-memory.ts (what it may make us hold, within the
 * process's memory budget), keepalive.ts (liveness, pings, RTT), peer-guard.ts (work the peer makes us do for
 * nothing: pings, floods of empty frames or CREDIT, resets, refusals), stream.ts (one stream). Knows nothing of
 * methods or codecs: streams carry opaque messages.
 * lifetime.ts holds the time limits: a frame must complete in time; an idle or old connection retires (acceptor).
 * Why this file is past ~500 lines (about 603): what is left is one job, the connection's phase machine: the phase
 * table and its one teardown path, the frame dispatch, and the wiring of the modules above (each one field and a few
 * calls here; issue 13 added the read-only views stats and inspection take: counts(), streamList(), phaseName, each a
 * line or two over private fields, whose counting lives in session-counters.ts). Every job with its own state has its
 * own file; what remains is the glue that decides, per phase, which of them sees a frame, and splitting it would
 * spread one state table across files.
 *
 * The read path never awaits: every frame is handled synchronously, and any reply it needs (PING ACK, CREDIT, RESET)
 * is queued in the outbox, which the reader never waits for.
 *
 * | phase     | event                                                            | next                          |
 * |-----------|------------------------------------------------------------------|-------------------------------|
 * | HANDSHAKE | the peer's HELLO is good: admission asked (handshake.ts); until  | HANDSHAKE                     |
 * |           | it answers only GOAWAY is read (else GW_ERR_BAD_HANDSHAKE)       |                               |
 * | HANDSHAKE | admitted, at once or later (an acceptor's HELLO goes first)      | OPEN                          |
 * | HANDSHAKE | refused: fail() (GOAWAY UNAUTHENTICATED or REFUSED, no HELLO of  | CLOSING                       |
 * |           | ours); or the peer's GOAWAY, whatever its code                   |                               |
 * | OPEN      | close(): GOAWAY NO_ERROR written; or the peer's GOAWAY NO_ERROR  | DRAINING                      |
 * | OPEN      | lifetime retires it: idle or max age, as close()                 | DRAINING                      |
 * | DRAINING  | the last stream closed: our side of the transport ended          | CLOSING                       |
 * | any open  | fail(): a protocol error (GOAWAY written), the peer's error      | CLOSING                       |
 * |           | GOAWAY or EOF, keepalive, a frame timeout, close() in HANDSHAKE, |                               |
 * |           | the grace                                                        |                               |
 * |           | period ran out, destroy(); every stream fails UNAVAILABLE        |                               |
 * | any       | the transport closed                                             | CLOSED                        |
 *
 * ("any open" is HANDSHAKE, OPEN or DRAINING; from CLOSING only the transport's close moves on.)
 */
import {
  ConnectionCode,
  Flag,
  FrameType,
  PRE_HANDSHAKE_MAX_FRAME_BYTES,
  Status,
} from '../wire/constants.js';
import { FrameDecoder } from '../wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { decodeCredit, encodeGoaway } from '../wire/payloads.js';
import type { Transport, TransportSink } from '../transport/transport.js';
import { internalError, SessionError } from './errors.js';
import { failureGoaway, PeerGoaway } from './goaway.js';
import { Handshake, type AdmitHook, type PeerHello, type SessionPeer } from './handshake.js';
import { readBudgetFor, resolveSessionOptions, type ResolvedSessionOptions, type SessionOptions } from './options.js';
import { Keepalive } from './keepalive.js';
import { Lifetime } from './lifetime.js';
import { PeerGuard } from './peer-guard.js';
import { ReceiveBudget } from './receive-budget.js';
import { ConnectionMemory } from './connection-memory.js';
import { BulkDataPieces } from './data-pieces.js';
import { memoryBudgetOf } from './memory-budget.js';
import { Outbox, type OutboxEvents } from './outbox.js';
import type { Role } from './role.js';
import type { Stream, StreamHost } from './stream.js';
import { StreamAcceptor, type IncomingStream } from './stream-acceptor.js';
import { StreamFrames } from './stream-frames.js';
import { StreamOpener, type OpenStreamInit } from './stream-opener.js';
import { StreamTable } from './stream-table.js';
import { WindowTuner, type WindowStats } from './window-tuner.js';
import { SessionCounters, type SessionCounts } from './session-counters.js';
import { limitTimer } from '../timers.js';

// what openStream() takes and the onStream hook gets, defined where each is made
export type { IncomingStream } from './stream-acceptor.js';
export type { OpenStreamInit } from './stream-opener.js';

export interface SessionHooks {
  /** A new stream from the peer. Set `stream.events` before returning; call `session.release(stream)` when done. */
  onStream(incoming: IncomingStream): void;
  /** Whether the peer may use the session, asked as its HELLO is accepted (handshake.ts); undefined admits everyone. */
  admit?: AdmitHook;
  /** A dialer's credentials, sent in its HELLO (AUTH_TOKEN). Never logged, never part of `peer`. */
  authToken?: Uint8Array;
}

const enum Phase {
  HANDSHAKE,
  OPEN,
  DRAINING,
  CLOSING,
  CLOSED,
}

const PHASE_NAMES = ['handshake', 'open', 'draining', 'closing', 'closed'];

/**
 * What one frame costs the per-read budget beyond its bytes. A frame takes ~1-3 µs to handle whatever its size, about
 * what a kilobyte of bulk data takes, so with the default budget of 256 KiB a turn handles at most ~900 small frames
 * (plus the rest of the chunk it is in), while a bulk transfer's 64 KiB frames pay 0.4 % more.
 */
const FRAME_READ_COST_BYTES = 256;

/** What the decoder takes while the peer is being admitted. */
const GOAWAY_ONLY = [FrameType.GOAWAY];

/** After we end our side, how long the peer has to close before we destroy the socket. */
const CLOSE_LINGER_MS = 2_000;

export class Session implements StreamHost {
  readonly options: ResolvedSessionOptions;
  /** Resolves when the peer's HELLO has been accepted; rejects if the handshake fails. */
  readonly ready: Promise<void>;
  /** Resolves when the connection is fully closed, with the error that closed it (undefined for a clean close). */
  readonly closed: Promise<Error | undefined>;
  /**
   * Resolves as soon as the session stops taking new streams (our close, the peer's GOAWAY, a failure), while calls
   * in flight may still finish: the moment to route new calls elsewhere.
   */
  readonly goingAway: Promise<void>;

  private phase = Phase.HANDSHAKE;
  private readonly decoder: FrameDecoder;
  private readonly outbox: Outbox;
  private readonly streams = new StreamTable();
  private readonly opener: StreamOpener;
  private readonly acceptor: StreamAcceptor;
  private readonly streamFrames: StreamFrames;
  readonly guard: PeerGuard; // streams report to it too (StreamHost)
  private readStopped = false;
  private readonly peerGoaway = new PeerGoaway();
  private readonly receiveBudget: ReceiveBudget;
  /** What the peer makes us hold (reassembly, queued sends), within the process's budget; streams reserve from it. */
  readonly memory: ConnectionMemory;
  private graceTimer: NodeJS.Timeout | undefined;
  private graceEndsAt = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private closeError: Error | undefined;
  private resolveClosed!: (error: Error | undefined) => void;
  private resolveGoingAway!: () => void;
  private readonly handshake: Handshake;
  private readonly hooks: Omit<SessionHooks, 'authToken'>;
  private readonly keepalive: Keepalive;
  private readonly lifetime: Lifetime;
  readonly windowTuner: WindowTuner; // streams ask it how far to grow a bulk window (StreamHost)
  readonly counters = new SessionCounters(); // bytes and credit stalls, for stats (StreamHost: streams count stalls)

  constructor(
    private readonly transport: Transport,
    readonly role: Role,
    hooks: SessionHooks,
    options: SessionOptions = {},
  ) {
    const { authToken, ...kept } = hooks;
    this.hooks = kept; // the token goes into our HELLO (handshake.ts) and is not kept
    this.options = resolveSessionOptions(options);
    this.outbox = new Outbox(transport, this.options, this.outboxEvents, role === 'dialer' ? 1 : 0);
    this.memory = new ConnectionMemory(this.options, memoryBudgetOf(this.options.memoryBudget));
    this.opener = new StreamOpener(role === 'dialer', this.options, this, this.outbox, () => this.phase === Phase.OPEN);
    this.receiveBudget = new ReceiveBudget(this.options, this.outbox);
    this.guard = new PeerGuard(this.options);
    this.acceptor = new StreamAcceptor(role === 'dialer', this.options, this, this.outbox, this.guard);
    this.streamFrames = new StreamFrames(this.streams, this.opener, this.acceptor, this.options);
    this.keepalive = new Keepalive(this.options, this.outbox, {
      isClosing: () => this.phase >= Phase.CLOSING,
      unresponsive: (error) => {
        this.fail(error, undefined, false);
        this.transport.destroy(); // a dead peer will not answer our FIN: do not linger on it
      },
    });
    this.windowTuner = new WindowTuner(this.options, this.memory, this.receiveBudget); // the connection window grows with the streams'
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.goingAway = new Promise((resolve) => (this.resolveGoingAway = resolve));
    this.decoder = new FrameDecoder(this.onFrame, {
      maxFrameBytes: PRE_HANDSHAKE_MAX_FRAME_BYTES,
      expectHelloFirst: true,
      acceptGoawayFirst: role === 'dialer', // the acceptor may refuse us instead of answering
      onExtensionFrame: () => this.guard.emptyFrameReceived('an extension frame'),
      pieces: new BulkDataPieces(this.streamFrames, this.receiveBudget, this.guard, () => !this.readStopped),
    });
    this.lifetime = new Lifetime(this.options, role === 'acceptor', this.decoder, {
      streamCount: () => this.streams.size,
      streamsOpened: () => this.opener.nextStreamId + this.acceptor.lastAccepted,
      fail: (error) => this.fail(error),
      // also while draining: a peer that sent its own GOAWAY but keeps streams open must not escape the age limit
      retire: (reason, graceMs) => (this.phase === Phase.OPEN || this.phase === Phase.DRAINING) && void this.close({ reason, graceMs }), // never rejects
    });
    this.handshake = new Handshake(this.options, transport.peer, role, this.outbox, authToken, (error) => this.fail(error));
    this.ready = this.handshake.ready;
    transport.attach(this.sink);
    this.outbox.flush();
  }

  // ---------------------------------------------------------------- public surface

  get peer(): SessionPeer {
    return this.handshake.peer;
  }

  /** Round-trip time of the last answered ping (yours or a keepalive's), in ms. */
  get rttMs(): number | undefined {
    return this.keepalive.rttMs;
  }

  /** What the peer's HELLO announced (its limits, names, features; never its credentials) and the version in use. */
  get peerHello(): PeerHello | undefined {
    const settings = this.handshake.peerSettings;
    return settings === undefined ? undefined : { protocolVersion: this.handshake.protocolVersion, settings };
  }

  /** What the window tuner has done: bulk windows tuned, the largest one, growth held, the loop it grew for (debugging, tests). */
  get windowStats(): WindowStats {
    return this.windowTuner.stats;
  }

  /** Bytes both ways, credit stalls, streams open (session-counters.ts): what stats() reports of the connection. */
  counts(): SessionCounts {
    return this.counters.snapshot(this.outbox.bytesWritten, this.streams.values(), this.streams.size);
  }

  /** The streams open now (inspection: gridwire inspect, the stall watch); a copy, built for each look. */
  streamList(): Stream[] {
    return this.streams.values();
  }

  /** Connection credit the peer has granted and we have not spent (inspection: a connection-wide stall shows here). */
  get connectionSendCredit(): number {
    return this.outbox.connectionCredit;
  }

  /** `handshake`, `open`, `draining` (GOAWAY sent or received, calls in flight finishing), `closing` or `closed`. */
  get phaseName(): string {
    return PHASE_NAMES[this.phase]!;
  }

  /** True while new streams may be opened. */
  get isOpen(): boolean {
    return this.phase === Phase.OPEN || this.phase === Phase.HANDSHAKE;
  }

  /** True while openStream() would open (not merely queue to fail): open, and no GOAWAY either way. */
  get acceptsStreams(): boolean {
    return this.isOpen && !this.peerGoaway.received;
  }

  /** The message of the peer's GOAWAY, once one arrived (why it closed, e.g. "duplicate connection"). */
  get peerGoawayMessage(): string | undefined {
    return this.peerGoaway.message;
  }

  /** Why the session closed, once it has. */
  get error(): Error | undefined {
    return this.closeError;
  }

  /** Largest message the peer accepts (from its HELLO); larger ones fail before they are sent. */
  get peerMaxMessageBytes(): number {
    return this.handshake.peerSettings?.maxMessageBytes ?? this.options.maxMessageBytes;
  }

  /** Number of streams in the table (both directions, including ours still queued for a concurrency slot). */
  get streamCount(): number {
    return this.streams.size;
  }

  /**
   * Opens a stream to the peer. Throws SessionError when the session is closing. When the peer's concurrency limit
   * is reached, the stream waits (queued) until a slot frees.
   */
  openStream(method: Uint8Array, init: OpenStreamInit = {}): Stream {
    if (!this.acceptsStreams) {
      throw new SessionError(Status.UNAVAILABLE, this.unavailableReason(), true);
    }
    if (this.opener.idsUsedUp) {
      this.close().catch(() => undefined);
      throw new SessionError(Status.UNAVAILABLE, 'stream ids on this connection are used up; open a new connection', true);
    }
    const stream = this.opener.open(method, init);
    this.streams.add(stream);
    return stream;
  }

  /**
   * Says the owner of a stream the peer opened is done with it (its handler has returned). Its concurrency slot frees
   * once the stream has also closed, so neither a running handler nor a response still waiting for credit escapes
   * the limit.
   */
  release(stream: Stream): void {
    this.acceptor.release(stream);
  }

  /** Measures the round-trip time. */
  ping(): Promise<number> {
    if (this.phase >= Phase.CLOSING) return Promise.reject(new SessionError(Status.UNAVAILABLE, this.unavailableReason(), true));
    return this.keepalive.ping();
  }

  /**
   * Graceful close: tells the peer (GOAWAY) that no new streams will be accepted, lets streams in flight finish,
   * then closes. After `graceMs` (default 10 000) streams still open fail with UNAVAILABLE.
   */
  close(options: { graceMs?: number; reason?: string } = {}): Promise<void> {
    if (this.phase === Phase.HANDSHAKE) {
      this.fail(undefined);
    } else if (this.phase === Phase.OPEN) {
      this.phase = Phase.DRAINING;
      this.resolveGoingAway();
      const reason = options.reason ?? 'closing';
      this.outbox.writeFrame(FrameType.GOAWAY, 0, 0, encodeGoaway(this.lastAcceptedPeerStreamId, ConnectionCode.NO_ERROR, reason));
      this.failPendingOpens('the session closed before this call was sent');
    }
    if (this.phase === Phase.DRAINING) {
      // also when the peer's GOAWAY started the drain: our close() still bounds how long we wait; a later close()
      // with a shorter grace shortens it (mesh.stop({ graceMs: 0 }) after a link closed a replaced session)
      const graceMs = options.graceMs ?? 10_000;
      const endsAt = performance.now() + graceMs;
      if (this.graceTimer === undefined || endsAt < this.graceEndsAt) {
        clearTimeout(this.graceTimer);
        this.graceEndsAt = endsAt;
        // a grace past what a timer can count (Infinity included) waits for the streams however long they take
        this.graceTimer = limitTimer(graceMs, () => this.fail(undefined, 'close grace period expired'));
        this.graceTimer?.unref();
      }
      this.maybeFinishDrain();
    }
    return this.closed.then(() => undefined);
  }

  /** Closes at once: every stream fails with UNAVAILABLE. */
  destroy(error?: Error): void {
    this.fail(error, 'session destroyed');
    this.transport.destroy();
  }

  // ---------------------------------------------------------------- StreamHost (used by Stream)
  // Not stripped from the .d.ts: a class whose `implements` members were stripped is a type error there. Users never
  // reach this class (RpcSession keeps it private; the declarations they reach do not import this file).

  get maxMessageBytes(): number {
    return this.options.maxMessageBytes;
  }

  streamClosed(stream: Stream, opened: boolean): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    if (stream.outbound) this.opener.closed(stream, opened);
    else this.acceptor.closed(stream);
    this.maybeFinishDrain();
  }

  // ---------------------------------------------------------------- reading

  /** The outbox's overflow fails the connection after the stream or handler that wrote has returned. */
  private readonly outboxEvents: OutboxEvents = {
    onBlockedOverflow: (message) => queueMicrotask(() => this.fail(new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, message))),
    onWriteStall: (message) => {
      this.fail(new ProtocolError(ProtocolErrorCode.WRITE_STALL, message));
      this.transport.destroy(); // a peer that reads nothing will not read our GOAWAY either
    },
  };

  private readonly sink: TransportSink = {
    onData: (chunk) => {
      if (this.readStopped) return this.transport.pauseReading?.(); // a peer still sending after a failure costs nothing
      this.counters.bytesIn += chunk.length;
      this.keepalive.noteRead();
      try {
        const framesBefore = this.decoder.framesCompleted;
        this.decoder.push(chunk);
        // each frame costs the read budget FRAME_READ_COST_BYTES more than its size: handling a small frame (a
        // call's OPEN, a RESET) takes as long as copying kilobytes, so a flood of them must yield as often as that
        this.transport.chargeRead?.((this.decoder.framesCompleted - framesBefore) * FRAME_READ_COST_BYTES);
        this.lifetime.afterRead();
      } catch (error) {
        this.fail(error instanceof ProtocolError ? error : internalError(error));
      }
    },
    onEnd: () => this.onPeerEnd(),
    onDrain: () => {
      this.guard.transportDrained();
      this.outbox.drained();
    },
    onClose: (error) => this.onTransportClose(error),
  };

  private readonly onFrame = (type: number, flags: number, streamId: number, payload: Uint8Array): void => {
    if (this.readStopped) return; // the connection failed earlier in this read: the frames after that are not handled
    if (payload.length !== 0 || type !== FrameType.DATA || (flags & (Flag.MESSAGE_END | Flag.END_STREAM)) !== 0) this.guard.frameWithPayload();
    else this.guard.emptyFrameReceived('an empty DATA frame that ends neither a message nor the stream');
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, streamId, payload);
      case FrameType.OPEN:
        return this.onOpen(streamId, payload);
      case FrameType.END:
        return this.streamFrames.end(streamId, payload);
      case FrameType.RESET:
        return this.streamFrames.reset(flags, streamId, payload);
      case FrameType.CREDIT:
        return this.onCredit(flags, streamId, payload);
      case FrameType.PING:
        return this.onPing(flags, payload);
      case FrameType.GOAWAY:
        return this.onGoaway(payload);
      case FrameType.HELLO:
        return this.onHello(payload);
    }
  };

  private onHello(payload: Uint8Array): void {
    if (this.phase !== Phase.HANDSHAKE || this.handshake.helloReceived) throw new ProtocolError(ProtocolErrorCode.BAD_HANDSHAKE, 'HELLO sent twice');
    this.handshake.receive(payload);
    // until admission answers, a peer that sends anything but GOAWAY is cut off: not one frame of it is handled
    this.decoder.allowOnly(GOAWAY_ONLY, 'sent before the peer was admitted (only GOAWAY may come until our HELLO)');
    this.handshake.admit(this.hooks.admit, this.onAdmission);
  }

  /** Admission answered, now or later: the peer is refused (the connection fails) or admitted (the session opens). */
  private readonly onAdmission = (refusal: ProtocolError | undefined): void => {
    if (this.phase !== Phase.HANDSHAKE) return; // closed while an admission that answers later ran
    if (refusal !== undefined) return this.fail(refusal);
    const settings = this.handshake.peerSettings!;
    this.decoder.allowAll();
    this.outbox.start(settings);
    this.decoder.setMaxFrameBytes(this.options.maxFrameBytes);
    this.phase = Phase.OPEN;
    this.opener.start(settings);
    this.acceptor.start(settings);
    this.opener.openQueued();
    this.keepalive.start();
    this.lifetime.start();
    this.outbox.releaseIdle(); // an idle connection holds no write slab; the first call allocates one (no-op if queued)
    const readBudget = readBudgetFor(this.options, this.handshake.peer);
    if (readBudget > 0) this.transport.setReadBudget?.(readBudget);
    this.outbox.flush(); // an acceptor's HELLO: the dialer waits for nothing else
    this.handshake.succeed();
  };

  private onOpen(id: number, payload: Uint8Array): void {
    const incoming = this.acceptor.accept(id, payload, this.phase !== Phase.OPEN);
    if (incoming === undefined) return;
    const stream = incoming.stream;
    this.streams.add(stream);
    try {
      this.hooks.onStream(incoming);
    } catch (error) {
      stream.reset(Status.INTERNAL, 'the server failed to start the call');
      this.release(stream);
      void error;
    }
  }

  private onData(flags: number, id: number, payload: Uint8Array): void {
    const n = payload.length;
    this.receiveBudget.takeData(n);
    this.streamFrames.data(flags, id, payload);
    this.receiveBudget.giveBack(n); // whatever became of the frame
  }

  private onCredit(flags: number, id: number, payload: Uint8Array): void {
    this.guard.creditReceived(this.outbox.dataFramesWritten);
    const increment = decodeCredit(payload);
    if (increment === 0) throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, `CREDIT of 0 on stream ${id}`);
    const messages = (flags & Flag.MESSAGES) !== 0;
    if (id !== 0) {
      this.streamFrames.credit(id, increment, messages);
      return;
    }
    if (messages) throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, 'message CREDIT on stream 0: the connection has no message window');
    if (!this.outbox.addCredit(increment)) {
      throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, 'CREDIT pushes the connection window past 2^31-1');
    }
  }

  private onPing(flags: number, payload: Uint8Array): void {
    if ((flags & Flag.ACK) === 0) {
      this.guard.pingReceived();
      this.guard.replySolicited('PING', !this.outbox.writable);
      this.outbox.writeFrame(FrameType.PING, Flag.ACK, 0, payload);
      return;
    }
    this.keepalive.ackReceived(payload);
  }

  private onGoaway(payload: Uint8Array): void {
    const error = this.peerGoaway.receive(payload, this.phase === Phase.HANDSHAKE);
    this.resolveGoingAway();
    if (error !== undefined || this.phase === Phase.HANDSHAKE) {
      // in the handshake even a graceful GOAWAY ends it: the peer refused us or closed first (no call was sent yet)
      this.fail(error ?? new SessionError(Status.UNAVAILABLE, `the peer closed the connection during the handshake: ${this.peerGoaway.message || 'no reason given'}`, true), undefined, false);
      return;
    }
    if (!this.peerGoaway.narrowed) return; // a repeat that changes nothing: no need to look at every stream again
    this.failPendingOpens('the peer is shutting down; the call was not sent');
    for (const stream of this.streams.values()) {
      if (this.peerGoaway.unprocessed(stream)) {
        stream.receiveReset(Status.UNAVAILABLE, 'the peer is shutting down; the call was not processed', true);
      }
    }
    if (this.phase === Phase.OPEN) this.phase = Phase.DRAINING;
    this.maybeFinishDrain();
  }

  // ---------------------------------------------------------------- teardown

  private maybeFinishDrain(): void {
    if (this.phase !== Phase.DRAINING || this.streams.size > 0) return;
    this.phase = Phase.CLOSING;
    this.keepalive.stop();
    this.lifetime.stop(); // drained: a frame the peer leaves unfinished now changes nothing; the linger ends it
    this.outbox.flush();
    this.transport.end();
    this.linger();
  }

  private onPeerEnd(): void {
    if (this.phase >= Phase.CLOSING) return;
    if (!this.decoder.atFrameBoundary) {
      this.fail(new SessionError(Status.UNAVAILABLE, 'connection cut in the middle of a frame'), undefined, false);
    } else if (this.phase === Phase.DRAINING && this.streams.size === 0) {
      this.maybeFinishDrain();
    } else {
      const during = this.phase === Phase.HANDSHAKE ? ' during the handshake' : '';
      // the peer left without a GOAWAY: there is nobody to explain anything to
      this.fail(new SessionError(Status.UNAVAILABLE, `the peer closed the connection${during}`), undefined, false);
    }
  }

  private onTransportClose(error?: Error): void {
    if (this.phase === Phase.CLOSED) return;
    if (this.phase !== Phase.CLOSING || error) {
      this.fail(error ?? new SessionError(Status.UNAVAILABLE, 'connection lost'), `connection lost${error ? `: ${error.message}` : ''}`, false);
    }
    this.phase = Phase.CLOSED;
    this.outbox.stop();
    this.memory.close();
    this.keepalive.stop();
    this.lifetime.stop();
    this.settleLeftovers('the session closed');
    clearTimeout(this.lingerTimer);
    clearTimeout(this.graceTimer); // a graceful close that drained in time leaves it armed
    this.resolveClosed(this.closeError);
  }

  /**
   * The one teardown path. The first error wins; the peer is told why (GOAWAY) when we still can; every stream and
   * ping fails with UNAVAILABLE; the transport is ended and, if the peer lingers, destroyed.
   */
  private fail(error: Error | undefined, streamReason?: string, tellPeer = true): void {
    if (this.phase === Phase.CLOSED) return;
    const wasClosing = this.phase === Phase.CLOSING;
    this.closeError ??= error;
    clearTimeout(this.graceTimer);
    this.keepalive.stop();
    this.lifetime.stop();
    this.resolveGoingAway();
    const reason = streamReason ?? (error ? `connection failed: ${error.message}` : 'the session closed');
    if (this.phase === Phase.HANDSHAKE) this.handshake.fail(error ?? new SessionError(Status.UNAVAILABLE, reason));
    if (tellPeer && !wasClosing) {
      this.outbox.queueFrame(FrameType.GOAWAY, 0, 0, failureGoaway(this.lastAcceptedPeerStreamId, error));
    }
    this.phase = Phase.CLOSING;
    this.readStopped = true; // the decoder may be mid-frame or broken: nothing more is read
    this.failPendingOpens(reason);
    for (const stream of this.streams.values()) {
      // streams the peer's GOAWAY says it never saw were not processed: safe to retry
      stream.receiveReset(Status.UNAVAILABLE, reason, this.peerGoaway.unprocessed(stream));
    }
    this.settleLeftovers(reason);
    if (!wasClosing) {
      this.outbox.writeRemaining();
      this.transport.end();
      this.linger();
    }
  }

  /** Rejects pings and drops scheduling state: whatever path closed the session, nothing stays pending. */
  private settleLeftovers(reason: string): void {
    this.keepalive.rejectPings(reason);
    this.outbox.dropScheduled();
  }

  private failPendingOpens(reason: string): void {
    this.opener.failQueued(reason);
  }

  private linger(): void {
    this.lingerTimer ??= setTimeout(() => this.transport.destroy(), CLOSE_LINGER_MS);
    this.lingerTimer.unref();
  }

  /** Highest peer stream id we accepted (not refused): what GOAWAY reports, so it never grows between GOAWAYs. */
  private get lastAcceptedPeerStreamId(): number {
    return this.acceptor.lastAccepted;
  }

  private unavailableReason(): string {
    if (this.closeError) return `the session is closed: ${this.closeError.message}`;
    if (this.phase === Phase.CLOSED) return 'the session is closed';
    if (this.peerGoaway.received) return 'the peer is shutting down (GOAWAY); open a new session';
    return 'the session is closing';
  }
}
