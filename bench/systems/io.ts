// What the hand-written systems (raw, ws, grpc-js, yamux, capnweb) share: a loopback listener and dialer for
// node:net, the sending loop that respects a Writable's backpressure, the FIFO that matches in-order replies to call
// start times, and the count of calls in flight a client waits out before it closes. Knows nothing of any one
// protocol.
import net from 'node:net';
import type { Writable } from 'node:stream';
import type { SideContext } from './scenario.js';

/** Listens on an ephemeral loopback port: the target to dial ('127.0.0.1:<port>') and how to close it. */
export async function listenLoopback(server: net.Server): Promise<{ target: string; close(): Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Opens one TCP connection to 'host:port' (Nagle off unless `noDelay` is false) and resolves once connected. */
export async function dial(target: string, noDelay = true): Promise<net.Socket> {
  const i = target.lastIndexOf(':');
  const socket = net.connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)), noDelay });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/**
 * Writes `item` (counting `bytes` each time) to `out` until ctx.stopSending aborts, waiting for 'drain' whenever
 * write() says the buffer is full, so no row ever queues more than its stream's high-water mark.
 */
export function pump(out: Writable, item: unknown, bytes: number, ctx: SideContext): Promise<void> {
  return new Promise((resolve, reject) => {
    out.once('error', reject);
    function fill(): void {
      while (!ctx.stopSending.aborted) {
        ctx.sent.add(bytes);
        if (!out.write(item)) {
          out.once('drain', fill);
          return;
        }
      }
      out.off('error', reject);
      resolve();
    }
    fill();
  });
}

/** A growable ring buffer of numbers: in-order transports (raw, ws) match replies to call start times with it. */
export class NumberFifo {
  private buf = new Float64Array(256);
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(v: number): void {
    if (this.size === this.buf.length) this.grow();
    this.buf[(this.head + this.size) & (this.buf.length - 1)] = v;
    this.size++;
  }

  /** Removes and returns the oldest value; throws when empty (a reply nobody asked for). */
  shift(): number {
    if (this.size === 0) throw new Error('reply without an outstanding call');
    const v = this.buf[this.head] ?? NaN;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.size--;
    return v;
  }

  private grow(): void {
    const bigger = new Float64Array(this.buf.length * 2);
    for (let i = 0; i < this.size; i++) bigger[i] = this.buf[(this.head + i) & (this.buf.length - 1)] ?? NaN;
    this.buf = bigger;
    this.head = 0;
  }
}

/**
 * Calls in flight on a client: close() waits until they have all replied (at most `timeoutMs`), so calls issued just
 * before the second mark end with their replies rather than with errors from a connection closed under them.
 */
export class CallsInFlight {
  private count = 0;
  private onIdle: (() => void) | undefined;

  begin(): void {
    this.count++;
  }

  end(): void {
    if (--this.count === 0) this.onIdle?.();
  }

  idle(timeoutMs = 1000): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = resolve;
      setTimeout(resolve, timeoutMs).unref();
    });
  }
}
