// Raw node:net bulk transfer, the floor: 64 KiB writes of one reused Buffer, respecting the socket's backpressure
// ('drain'), counted at the receiver. No framing at all. Upload: the client writes until the second mark, half-closes,
// and the server answers with its count (8 bytes) before closing. Download: the client writes one byte to start it;
// the server writes until the second mark and closes; the orchestrator checks the server's count against the client's.
import net from 'node:net';
import { listenLoopback, splitHostPort } from '../systems/raw.js';
import { pump } from './pump.js';
import { CHUNK_BYTES, checkCount, deferred, type Scenario } from './scenario.js';

const CHUNK = Buffer.alloc(CHUNK_BYTES, 0x5a);
const COUNT_BYTES = 8;

function listenOnce(onConnection: (socket: net.Socket) => void): Promise<{ target: string; close(): Promise<void> }> {
  // allowHalfOpen: the upload server still answers with its count after the client has half-closed.
  const server = net.createServer({ allowHalfOpen: true }, function rawOnConnection(socket) {
    socket.setNoDelay(true);
    onConnection(socket);
  });
  return listenLoopback(server);
}

async function dial(target: string): Promise<net.Socket> {
  const [host, port] = splitHostPort(target);
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
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

const upload: Scenario = {
  async startServer(ctx) {
    const done = deferred();
    const listener = await listenOnce(function uploadOnConnection(socket) {
      socket.on('data', (chunk: Buffer) => ctx.received.add(chunk.length));
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
    socket.on('data', (chunk: Buffer) => replies.push(chunk));
    let pumping: Promise<void> = Promise.resolve();
    return {
      start() {
        pumping = pump(socket, CHUNK, CHUNK_BYTES, ctx);
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

const download: Scenario = {
  async startServer(ctx) {
    const done = deferred();
    const listener = await listenOnce(function downloadOnConnection(socket) {
      socket.once('data', () => {
        pump(socket, CHUNK, CHUNK_BYTES, ctx).then(() => socket.end(done.resolve), done.reject);
      });
    });
    return { target: listener.target, finish: () => done.promise, close: listener.close };
  },

  async connectClient(target, ctx) {
    const socket = await dial(target);
    socket.on('data', (chunk: Buffer) => ctx.received.add(chunk.length));
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

export const rawScenarios = { 'bulk-upload': upload, 'bulk-download': download } as const;
