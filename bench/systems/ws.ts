// Bare `ws` echo, no RPC layer: the client sends binary messages (32 or 42 bytes, --payload), the server sends each one back.
// perMessageDeflate is off on both sides; bufferutil is not installed, so masking runs in JS (as in baseline.md).
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { NumberFifo } from './io.js';
import { echoScenario, type EchoClient, type EchoServer, type ReplyFn, type Scenario } from './scenario.js';

function onServerConnection(socket: WebSocket): void {
  socket.on('error', () => socket.terminate());
  socket.on('message', function serverOnMessage(data: RawData, isBinary: boolean) {
    socket.send(data, { binary: isBinary });
  });
}

async function startServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', onServerConnection);
  const { port } = wss.address() as { port: number };
  return {
    target: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

async function connectClient(target: string, onReply: ReplyFn, bytes: number): Promise<EchoClient> {
  const socket = new WebSocket(target, { perMessageDeflate: false });
  socket.binaryType = 'nodebuffer';
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const pending = new NumberFifo();
  const request = Buffer.alloc(bytes, 7); // ws copies read-only Buffers when masking, so reuse is safe
  socket.on('error', function clientOnError(err) {
    while (pending.length > 0) onReply(err, pending.shift());
  });
  socket.on('message', function clientOnMessage(data: RawData) {
    const len = Buffer.isBuffer(data) ? data.length : -1;
    onReply(len === bytes ? null : new Error(`ws: reply of ${len} bytes`), pending.shift());
  });
  return {
    call(t0: number): void {
      pending.push(t0);
      socket.send(request);
    },
    close: () =>
      new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
}

export function wsScenarios(concurrency: number, echoBytes: number): Record<'echo', Scenario> {
  return { echo: echoScenario({ startServer, connectClient }, concurrency, echoBytes) };
}
