// Raw node:net, the floor: no RPC work at all.
//   echo           each message is a 4-byte big-endian length followed by the payload (32 or 42 bytes, --payload). The client corks its
//                  socket and uncorks on the next tick, so calls issued in one tick leave in one write (as in
//                  baseline.md); the server echoes every complete frame of a 'data' chunk in one corked batch.
//   bulk-upload    the client writes 64 KiB of one reused Buffer at a time, respecting backpressure, until the second
//                  mark, half-closes, and the server answers with its count (8 bytes) before closing. No framing.
//   bulk-download  the client writes one byte to start it; the server writes until the second mark and closes; the
//                  orchestrator checks the server's count against the client's.
// The system `raw-1m` is the same bulk scenarios writing 1 MiB buffers (rawBulkScenarios), the machine's limit.
import net from 'node:net';
import { dial, listenLoopback, NumberFifo, pump } from './io.js';
import {
  CHUNK_BYTES, checkCount, deferred, echoScenario, type EchoClient, type EchoServer, type ReplyFn,
  type Scenario,
} from './scenario.js';

// ---- echo ----

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

function onEchoConnection(socket: net.Socket): void {
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

function startEchoServer(): Promise<EchoServer> {
  return listenLoopback(net.createServer(onEchoConnection));
}

async function connectEchoClient(target: string, onReply: ReplyFn, bytes: number): Promise<EchoClient> {
  const socket = await dial(target);
  const pending = new NumberFifo();
  const request = frame(Buffer.alloc(bytes, 7));
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
      onReply(len === bytes ? null : new Error(`raw: reply of ${len} bytes`), pending.shift());
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

// ---- bulk ----

const COUNT_BYTES = 8;

function listenBulk(onConnection: (socket: net.Socket) => void): Promise<{ target: string; close(): Promise<void> }> {
  // allowHalfOpen: the upload server still answers with its count after the client has half-closed.
  const server = net.createServer({ allowHalfOpen: true }, function rawOnConnection(socket) {
    socket.setNoDelay(true);
    onConnection(socket);
  });
  return listenLoopback(server);
}

function destroy(socket: net.Socket): Promise<void> {
  socket.destroy();
  return Promise.resolve();
}

/** Resolves at the socket's 'end' (the peer half-closed), rejects on error. */
function ended(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
}

/** Writes `chunk` (one reused Buffer) at a time, respecting backpressure, until the second mark. */
function upload(chunk: Buffer): Scenario {
  return {
    async startServer(ctx) {
      const done = deferred();
      const listener = await listenBulk(function uploadOnConnection(socket) {
        socket.on('data', (data: Buffer) => ctx.received.add(data.length));
        ended(socket).then(() => {
          const reply = Buffer.alloc(COUNT_BYTES);
          reply.writeBigUInt64BE(BigInt(ctx.received.total));
          socket.end(reply, done.resolve);
        }, done.reject);
      });
      return { target: listener.target, finish: () => done.promise, close: listener.close };
    },

    async connectClient(target, ctx) {
      const socket = await dial(target);
      const replies: Buffer[] = [];
      socket.on('data', (data: Buffer) => replies.push(data));
      let pumping: Promise<void> = Promise.resolve();
      return {
        start() {
          pumping = pump(socket, chunk, chunk.length, ctx);
          pumping.catch(ctx.fail);
          return Promise.resolve();
        },
        async finish() {
          await pumping;
          const serverDone = ended(socket);
          socket.end();
          await serverDone;
          const reply = Buffer.concat(replies);
          if (reply.length !== COUNT_BYTES) throw new Error(`raw upload: count reply of ${reply.length} bytes`);
          checkCount('raw upload', ctx.sent.total, Number(reply.readBigUInt64BE(0)));
        },
        close: () => destroy(socket),
      };
    },
  };
}

/** The server writes `chunk` at a time, as upload() does, once the client's one byte has arrived. */
function download(chunk: Buffer): Scenario {
  return {
    async startServer(ctx) {
      const done = deferred();
      const listener = await listenBulk(function downloadOnConnection(socket) {
        socket.once('data', () => {
          pump(socket, chunk, chunk.length, ctx).then(() => socket.end(done.resolve), done.reject);
        });
      });
      return { target: listener.target, finish: () => done.promise, close: listener.close };
    },

    async connectClient(target, ctx) {
      const socket = await dial(target);
      socket.on('data', (data: Buffer) => ctx.received.add(data.length));
      const serverDone = ended(socket);
      serverDone.catch(ctx.fail);
      return {
        start() {
          socket.write('g');
          return Promise.resolve();
        },
        finish: () => serverDone,
        close: () => destroy(socket),
      };
    },
  };
}

/** The bulk scenarios writing `writeBytes` at a time: CHUNK_BYTES for `raw`, 1 MiB for `raw-1m`. */
export function rawBulkScenarios(writeBytes: number): Record<'bulk-upload' | 'bulk-download', Scenario> {
  const chunk = Buffer.alloc(writeBytes, 0x5a);
  return { 'bulk-upload': upload(chunk), 'bulk-download': download(chunk) };
}

export function rawScenarios(concurrency: number, echoBytes: number): Record<'echo' | 'bulk-upload' | 'bulk-download', Scenario> {
  return {
    echo: echoScenario({ startServer: startEchoServer, connectClient: connectEchoClient }, concurrency, echoBytes),
    ...rawBulkScenarios(CHUNK_BYTES),
  };
}
