/**
 * A Transport over a node:net Socket (TCP or Unix). Nagle is off: the session already coalesces frames, so the
 * kernel must not add its own delay.
 */
import type { Socket } from 'node:net';
import type { PeerInfo, Transport, TransportSink } from './transport.js';

export class SocketTransport implements Transport {
  private sink: TransportSink | undefined;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    readonly peer: PeerInfo,
  ) {
    socket.setNoDelay(true);
    socket.pause();
  }

  attach(sink: TransportSink): void {
    if (this.sink) throw new Error('transport already attached');
    this.sink = sink;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => sink.onData(chunk));
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

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.closed || this.socket.writableEnded) return false;
    const socket = this.socket;
    if (chunks.length === 1) return socket.write(chunks[0]!);
    socket.cork();
    for (const chunk of chunks) socket.write(chunk);
    socket.uncork();
    return !socket.writableNeedDrain;
  }

  end(): void {
    if (!this.closed) this.socket.end();
  }

  destroy(error?: Error): void {
    this.socket.destroy(error);
  }
}
