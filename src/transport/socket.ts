/**
 * A Transport over a node:net Socket (TCP or Unix, or a TLSSocket: one is a net.Socket that reads and writes clear
 * text). Nagle is off: the session already coalesces frames, so the kernel must not add its own delay.
 */
import type { Socket } from 'node:net';
import type { PeerInfo, Transport, TransportSink } from './transport.js';

export class SocketTransport implements Transport {
  private sink: TransportSink | undefined;
  private closed = false;
  /** Bytes this socket may deliver per event-loop turn; 0 = no limit. */
  private readBudget = 0;
  /** Bytes counted against the budget since the count last restarted (see countRead). */
  private readThisTurn = 0;
  /** The count restarts at the next turn (a setImmediate is pending). */
  private restartArmed = false;
  private yielded = false;
  /** pauseReading() was called: nothing resumes the socket again. */
  private readingStopped = false;

  constructor(
    private readonly socket: Socket,
    readonly peer: PeerInfo,
    /**
     * What a connection that closed before the peer sent a byte most likely means (a dialer's hint: a TLS port hangs up
     * on a plain client like that); undefined: nothing to say.
     */
    private readonly silentCloseMeans?: () => Error,
  ) {
    socket.setNoDelay(true);
    socket.pause();
  }

  attach(sink: TransportSink): void {
    if (this.sink) throw new Error('transport already attached');
    this.sink = sink;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => {
      if (this.readBudget === 0) return sink.onData(chunk);
      this.countRead(chunk.length);
      sink.onData(chunk);
      if (this.readThisTurn >= this.readBudget && !this.yielded && !this.closed) {
        this.yielded = true;
        socket.pause();
      }
    });
    socket.on('end', () => sink.onEnd());
    socket.on('drain', () => sink.onDrain());
    // 'error' is always followed by 'close'; remember it so close can report it
    let failure: Error | undefined;
    socket.on('error', (error: Error) => {
      failure ??= error;
    });
    socket.on('close', () => {
      this.closed = true;
      sink.onClose(failure);
    });
    if (socket.destroyed) {
      this.closed = true;
      queueMicrotask(() => sink.onClose(failure ?? new Error('socket closed before the session started')));
      return;
    }
    socket.resume();
  }

  /**
   * libuv reads a ready socket up to 32 times per loop turn: a bulk connection would hold the event loop for ~2 MiB of
   * processing while another connection's small reply waited. With a budget, the socket pauses once it has delivered
   * that much in one turn and resumes after the turn's other I/O (setImmediate runs after the poll phase). A paused
   * stream may still hold up to its highWaterMark, so a turn delivers a few chunks past the budget, not 32.
   *
   * The count restarts at the turn after it reached half the budget, not after every turn: a connection of small calls
   * (one read of ~100 bytes per call) would otherwise pay a setImmediate per read (~0.3 µs and an extra pass of the
   * loop's check phase), to restart a count that was nowhere near the budget. Bytes of earlier turns are thus counted
   * in a later one, under half the budget of them: a turn still delivers at most the budget (and a chunk) before
   * pausing, and at least half of it.
   */
  setReadBudget(bytes: number): void {
    this.readBudget = bytes;
  }

  chargeRead(bytes: number): void {
    if (this.readBudget === 0 || bytes === 0) return;
    this.countRead(bytes); // checked against the budget right after onData returns
  }

  private countRead(bytes: number): void {
    this.readThisTurn += bytes;
    if (this.restartArmed || this.readThisTurn * 2 < this.readBudget) return;
    this.restartArmed = true;
    setImmediate(this.nextTurn);
  }

  private readonly nextTurn = (): void => {
    this.restartArmed = false;
    this.readThisTurn = 0;
    if (this.yielded) {
      this.yielded = false;
      if (!this.closed && !this.readingStopped) this.socket.resume();
    }
  };

  /**
   * Stops reading for good. The kernel's receive buffer then fills and TCP stops the sender, so a flooder costs
   * nothing while the connection lingers; a paused socket keeps at most its highWaterMark read ahead.
   */
  pauseReading(): void {
    this.readingStopped = true;
    this.socket.pause();
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.closed || this.socket.writableEnded) return false;
    const socket = this.socket;
    if (chunks.length === 1) return socket.write(chunks[0]!);
    socket.cork();
    for (const chunk of chunks) socket.write(chunk);
    socket.uncork();
    return !socket.writableNeedDrain;
  }

  explainFailure(): Error | undefined {
    return this.silentCloseMeans !== undefined && this.socket.bytesRead === 0 ? this.silentCloseMeans() : undefined;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  end(): void {
    if (!this.closed) this.socket.end();
  }

  destroy(error?: Error): void {
    this.socket.destroy(error);
  }
}
