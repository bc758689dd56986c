// Raw node:net ping-pong: each message is a 4-byte big-endian length followed by the 32-byte payload. The client
// corks its socket and uncorks on the next tick, so calls issued in one tick leave in one write (as in baseline.md);
// the server echoes every complete frame of a 'data' chunk in one corked batch. No RPC work at all: this is the floor.
import net from 'node:net';
import { NumberFifo } from './fifo.js';
import { PAYLOAD_BYTES, type BenchClient, type BenchServer, type BenchSystem, type ReplyFn } from './types.js';

const HEADER_BYTES = 4;

/** Returns a 'data' handler that splits a byte stream into whole frames (header included, sliced without copying). */
function createFrameReader(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let carry: Buffer | null = null;
  return function readFrames(chunk: Buffer): void {
    const buf = carry === null ? chunk : Buffer.concat([carry, chunk]);
    carry = null;
    let off = 0;
    while (buf.length - off >= HEADER_BYTES) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off - HEADER_BYTES < len) break;
      onFrame(buf.subarray(off, off + HEADER_BYTES + len));
      off += HEADER_BYTES + len;
    }
    if (off < buf.length) carry = buf.subarray(off);
  };
}

function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, HEADER_BYTES);
  return out;
}

function onServerConnection(socket: net.Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  let batch: Buffer[] = [];
  const read = createFrameReader(function echoFrame(whole) {
    batch.push(whole);
  });
  socket.on('data', function serverOnData(chunk: Buffer) {
    read(chunk);
    if (batch.length === 0) return;
    socket.cork();
    for (const b of batch) socket.write(b);
    socket.uncork();
    batch = [];
  });
}

/** Listens on an ephemeral loopback port: the target to dial and how to close it. */
export async function listenLoopback(server: net.Server): Promise<BenchServer> {
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

function startServer(): Promise<BenchServer> {
  return listenLoopback(net.createServer(onServerConnection));
}

async function connectClient(target: string, onReply: ReplyFn): Promise<BenchClient> {
  const [host, port] = splitHostPort(target);
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const pending = new NumberFifo();
  const request = frame(Buffer.alloc(PAYLOAD_BYTES, 7));
  let corked = false;
  function uncork(): void {
    corked = false;
    socket.uncork();
  }
  socket.on('error', function clientOnError(err) {
    while (pending.length > 0) onReply(err, pending.shift());
  });
  socket.on(
    'data',
    createFrameReader(function onReplyFrame(whole) {
      const len = whole.length - HEADER_BYTES;
      onReply(len === PAYLOAD_BYTES ? null : new Error(`raw: reply of ${len} bytes`), pending.shift());
    }),
  );
  return {
    call(t0: number): void {
      pending.push(t0);
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(uncork);
      }
      socket.write(request);
    },
    close: () => new Promise<void>((resolve) => socket.end(resolve)),
  };
}

export function splitHostPort(target: string): [string, number] {
  const i = target.lastIndexOf(':');
  return [target.slice(0, i), Number(target.slice(i + 1))];
}

export const raw: BenchSystem = { startServer, connectClient };
