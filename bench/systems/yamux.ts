// @chainsafe/libp2p-yamux 8 (the TypeScript stream multiplexer libp2p uses) over one plain TCP socket: no
// encryption, no protocol negotiation, one muxer per side, keepalive on (its default), every other option default.
// The socket is adapted as @libp2p/tcp adapts one: a subclass of @libp2p/utils' AbstractMultiaddrConnection that
// feeds the socket's reads to onData, writes what the muxer sends, and passes on the socket's 'drain'.
//   echo           a new stream per call: the client opens it, sends the 32-byte request and closes its side; the
//                  server echoes every message and closes its side at the client's; the call is done when the 32
//                  bytes are back (the streams' closing handshake finishes behind it)
//   bulk-upload    one stream; the client sends 64 KiB of one reused buffer at a time until the second mark, closes
//                  its side, and the server answers with its count (8 bytes) before closing its own
//   bulk-download  one stream; the client sends one byte, the server sends as the upload does until the second mark
//                  and closes its side; the orchestrator checks the server's count against the client's
// Both read with a 'message' listener (no async iterator in the way). A yamux stream's 'drain' fires on every window
// update it receives, not only once its buffer has emptied, so the sender tops the stream up only while less than
// one chunk waits (pumpStream). Node 20 lacks Promise.withResolvers, which yamux's keepalive ping needs to measure
// the RTT its receive window grows by: with-resolvers.ts provides it, and every bulk run fails if a side's RTT is
// still unknown at the end (the window would have stayed at 256 KiB).
import './with-resolvers.js';
import net from 'node:net';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Logger, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { AbstractMultiaddrConnection, ipPortToMultiaddr, type SendResult } from '@libp2p/utils';
import { CallsInFlight, dial, listenLoopback } from './io.js';
import {
  CHUNK_BYTES, checkCount, deferred, echoScenario, type EchoClient, type EchoServer, type ReplyFn,
  type Scenario, type SideContext,
} from './scenario.js';

type YamuxMuxer = ReturnType<ReturnType<ReturnType<typeof yamux>>['createStreamMuxer']>;
type YamuxStream = Awaited<ReturnType<YamuxMuxer['createStream']>>;
/** What the muxer hands the connection to write: a Uint8ArrayList (a list of Uint8Array views). */
type Chunks = Parameters<AbstractMultiaddrConnection['sendData']>[0];

/** A logger that logs nothing, as @libp2p/logger's are when DEBUG is unset. */
const SILENT: Logger = Object.assign(function silent(): void {}, {
  error(): void {},
  trace(): void {},
  enabled: false,
  newScope: (): Logger => SILENT,
});

// ---- the socket as a MultiaddrConnection ----

/** One TCP socket as the MessageStream a yamux muxer runs over. */
class SocketConnection extends AbstractMultiaddrConnection {
  private readonly socket: net.Socket;

  constructor(socket: net.Socket, direction: 'inbound' | 'outbound') {
    const remoteAddr = ipPortToMultiaddr(socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0);
    super({ remoteAddr, direction, log: SILENT });
    this.socket = socket;
    socket.on('data', (buf: Buffer) => this.onData(buf));
    socket.on('drain', () => this.safeDispatchEvent('drain'));
    socket.on('error', (err) => this.abort(err));
    socket.once('close', () => this.onTransportClosed());
  }

  /** Writes every view (the socket buffers what the kernel does not take yet); asks for a 'drain' when it is full. */
  sendData(data: Chunks): SendResult {
    let canSendMore = true;
    for (const buf of data) canSendMore = this.socket.write(buf);
    return { sentBytes: data.byteLength, canSendMore };
  }

  sendClose(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  sendReset(): void {
    this.socket.resetAndDestroy();
  }

  sendPause(): void {
    this.socket.pause();
  }

  sendResume(): void {
    this.socket.resume();
  }
}

function createMuxer(socket: net.Socket, direction: 'inbound' | 'outbound'): YamuxMuxer {
  return yamux()().createStreamMuxer(new SocketConnection(socket, direction));
}

/** A server whose every connection gets a muxer handed to `onMuxer`; close() destroys what is still connected. */
async function listenYamux(onMuxer: (muxer: YamuxMuxer) => void): Promise<{ target: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(function yamuxOnConnection(socket) {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    onMuxer(createMuxer(socket, 'inbound'));
  });
  const listener = await listenLoopback(server);
  return {
    target: listener.target,
    close() {
      for (const socket of sockets) socket.destroy();
      return listener.close();
    },
  };
}

async function connectYamux(target: string): Promise<{ muxer: YamuxMuxer; close(): Promise<void> }> {
  const socket = await dial(target);
  return {
    muxer: createMuxer(socket, 'outbound'),
    close() {
      socket.destroy();
      return Promise.resolve();
    },
  };
}

const byteLengthOf = (evt: StreamMessageEvent): number => evt.data.byteLength;
const bytesOf = (evt: StreamMessageEvent): Uint8Array => (evt.data instanceof Uint8Array ? evt.data : evt.data.subarray());

// ---- echo ----

function echoStream(stream: YamuxStream): void {
  stream.addEventListener('message', function serverOnMessage(evt) {
    stream.send(evt.data);
  });
  stream.addEventListener('remoteCloseWrite', function serverOnRemoteCloseWrite() {
    stream.close().catch((err: unknown) => stream.abort(err instanceof Error ? err : new Error(String(err))));
  });
}

async function startEchoServer(): Promise<EchoServer> {
  return listenYamux((muxer) => muxer.addEventListener('stream', (evt) => echoStream(evt.detail)));
}

async function connectEchoClient(target: string, onReply: ReplyFn, bytes: number): Promise<EchoClient> {
  const { muxer, close } = await connectYamux(target);
  const request = new Uint8Array(bytes).fill(7);
  const inFlight = new CallsInFlight();

  /** Calls onReply once per call (the reply, or the first error). */
  function replyOnce(): ReplyFn {
    let replied = false;
    return (err, t0) => {
      if (replied) return;
      replied = true;
      inFlight.end();
      onReply(err, t0);
    };
  }

  async function call(t0: number, reply: ReplyFn): Promise<void> {
    const stream = await muxer.createStream();
    let received = 0;
    stream.addEventListener('message', function clientOnMessage(evt) {
      received += byteLengthOf(evt);
      if (received === bytes) reply(null, t0);
    });
    stream.addEventListener('close', function clientOnClose(evt: StreamCloseEvent) {
      reply(evt.error ?? new Error(`yamux: stream closed after ${received} of ${bytes} bytes`), t0);
    });
    stream.send(request);
    await stream.close();
  }

  return {
    call(t0: number): void {
      inFlight.begin();
      const reply = replyOnce();
      call(t0, reply).catch((err: unknown) => reply(err instanceof Error ? err : new Error(String(err)), t0));
    },
    async close() {
      await inFlight.idle();
      await close();
    },
  };
}

// ---- bulk ----

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);
const COUNT_BYTES = 8;

/**
 * Sends CHUNK on `stream` until the second mark; resolves then (what is queued is sent before the stream's close()
 * completes). A 'drain' comes with every window update, so each one tops the stream up only while less than a chunk
 * waits in its write buffer, and only after the stream has sent what the update allows: @libp2p/utils resumes
 * sending in a microtask it queues from its own 'drain' listener, which runs before ours.
 */
function pumpStream(stream: YamuxStream, ctx: SideContext): Promise<void> {
  return new Promise((resolve, reject) => {
    function topUp(): void {
      while (!ctx.stopSending.aborted && stream.writeBufferLength < CHUNK_BYTES) {
        ctx.sent.add(CHUNK_BYTES);
        if (!stream.send(CHUNK)) return;
      }
      if (ctx.stopSending.aborted) done();
    }
    function onDrain(): void {
      queueMicrotask(topUp);
    }
    function onClose(evt: StreamCloseEvent): void {
      cleanUp();
      reject(evt.error ?? new Error('yamux: stream closed during the transfer'));
    }
    function done(): void {
      cleanUp();
      resolve();
    }
    function cleanUp(): void {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('close', onClose);
      ctx.stopSending.removeEventListener('abort', done);
    }
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('close', onClose);
    ctx.stopSending.addEventListener('abort', done);
    topUp();
  });
}

/** Resolves when the peer closes its side of `stream`, rejects if the stream fails first. */
function remoteClosed(stream: YamuxStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.addEventListener('remoteCloseWrite', () => resolve());
    stream.addEventListener('close', (evt: StreamCloseEvent) => (evt.error ? reject(evt.error) : resolve()));
  });
}

/**
 * Fails the run unless this side's keepalive ping was answered (the RTT yamux grows a receive window by), and records
 * the RTT and, on the receiving side, how far the stream's receive window grew (from 256 KiB, up to 16 MiB).
 */
function checkKeepalive(muxer: YamuxMuxer, ctx: SideContext, receiving: YamuxStream | null): void {
  const rtt = muxer.getRTT();
  ctx.facts.yamuxRttMs = rtt;
  if (receiving !== null) ctx.facts.yamuxRecvWindowKiB = (receiving as unknown as { recvWindow: number }).recvWindow / 1024;
  if (rtt < 0) throw new Error('yamux: the keepalive ping was never answered (RTT unknown), so its window could not grow');
}

const upload: Scenario = {
  async startServer(ctx) {
    const done = deferred();
    let serverMuxer: YamuxMuxer | undefined;
    let serverStream: YamuxStream | undefined;
    const listener = await listenYamux(function uploadOnMuxer(muxer) {
      serverMuxer = muxer;
      muxer.addEventListener('stream', function uploadOnStream(evt) {
        const stream = (serverStream = evt.detail);
        stream.addEventListener('message', (m) => ctx.received.add(byteLengthOf(m)));
        remoteClosed(stream).then(async () => {
          const reply = new Uint8Array(COUNT_BYTES);
          new DataView(reply.buffer).setBigUint64(0, BigInt(ctx.received.total));
          stream.send(reply);
          await stream.close();
        }).then(done.resolve, done.reject);
      });
    });
    return {
      target: listener.target,
      async finish() {
        await done.promise;
        if (serverMuxer !== undefined) checkKeepalive(serverMuxer, ctx, serverStream ?? null);
      },
      close: listener.close,
    };
  },

  async connectClient(target, ctx) {
    const { muxer, close } = await connectYamux(target);
    const stream = await muxer.createStream();
    const replies: Uint8Array[] = [];
    stream.addEventListener('message', (evt) => replies.push(bytesOf(evt).slice()));
    const serverDone = remoteClosed(stream);
    serverDone.catch(() => undefined);
    let pumping: Promise<void> = Promise.resolve();
    return {
      start() {
        pumping = pumpStream(stream, ctx);
        pumping.catch(ctx.fail);
        return Promise.resolve();
      },
      async finish() {
        await pumping;
        await stream.close();
        await serverDone;
        const reply = Buffer.concat(replies);
        if (reply.length !== COUNT_BYTES) throw new Error(`yamux upload: count reply of ${reply.length} bytes`);
        checkCount('yamux upload', ctx.sent.total, Number(reply.readBigUInt64BE(0)));
        checkKeepalive(muxer, ctx, null);
      },
      close,
    };
  },
};

const download: Scenario = {
  async startServer(ctx) {
    const done = deferred();
    let serverMuxer: YamuxMuxer | undefined;
    const listener = await listenYamux(function downloadOnMuxer(muxer) {
      serverMuxer = muxer;
      muxer.addEventListener('stream', function downloadOnStream(evt) {
        const stream = evt.detail;
        stream.addEventListener('message', function downloadOnRequest() {
          pumpStream(stream, ctx).then(() => stream.close()).then(done.resolve, done.reject);
        }, { once: true });
      });
    });
    return {
      target: listener.target,
      async finish() {
        await done.promise;
        if (serverMuxer !== undefined) checkKeepalive(serverMuxer, ctx, null);
      },
      close: listener.close,
    };
  },

  async connectClient(target, ctx) {
    const { muxer, close } = await connectYamux(target);
    const stream = await muxer.createStream();
    stream.addEventListener('message', (evt) => ctx.received.add(byteLengthOf(evt)));
    const serverDone = remoteClosed(stream);
    serverDone.catch(ctx.fail);
    return {
      start() {
        stream.send(new Uint8Array([0x67]));
        return Promise.resolve();
      },
      async finish() {
        await serverDone;
        checkKeepalive(muxer, ctx, stream);
      },
      close,
    };
  },
};

export function yamuxScenarios(concurrency: number, echoBytes: number): Record<'echo' | 'bulk-upload' | 'bulk-download', Scenario> {
  return {
    echo: echoScenario({ startServer: startEchoServer, connectClient: connectEchoClient }, concurrency, echoBytes),
    'bulk-upload': upload,
    'bulk-download': download,
  };
}
