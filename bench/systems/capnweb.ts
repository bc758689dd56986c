// capnweb (Cloudflare's object-capability RPC in TypeScript, JSON on the wire) over one WebSocket of the `ws`
// package, as capnweb's README sets it up on Node: the server's main object is an RpcTarget with echo(bytes), the
// client calls it through the stub newWebSocketRpcSession returns. Each call sends 32 bytes (a Uint8Array, which
// capnweb encodes as base64 in its JSON) and awaits the same back. perMessageDeflate is off on both sides, as in the
// ws system. Node 20 has no global WebSocket (only behind --experimental-websocket), and capnweb's transport reads
// the constant WebSocket.CONNECTING from it, so this module provides ws's class as the global when there is none.
import { WebSocket, WebSocketServer } from 'ws';
import { newWebSocketRpcSession, RpcTarget } from 'capnweb';
import { CallsInFlight } from './io.js';
import { echoScenario, type EchoClient, type EchoServer, type ReplyFn, type Scenario } from './scenario.js';

const globals = globalThis as { WebSocket?: unknown };
globals.WebSocket ??= WebSocket;

/** What newWebSocketRpcSession takes: the standard WebSocket, which ws's class implements. */
type StandardWebSocket = Exclude<Parameters<typeof newWebSocketRpcSession>[0], string>;

class EchoTarget extends RpcTarget {
  echo(data: Uint8Array): Uint8Array {
    return data;
  }
}

async function startServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', function capnwebOnConnection(socket: WebSocket) {
    socket.on('error', () => socket.terminate());
    newWebSocketRpcSession(socket as unknown as StandardWebSocket, new EchoTarget());
  });
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
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const stub = newWebSocketRpcSession<EchoTarget>(socket as unknown as StandardWebSocket);
  const request = new Uint8Array(bytes).fill(7);
  const inFlight = new CallsInFlight();
  function check(reply: unknown): Error | null {
    const len = reply instanceof Uint8Array ? reply.byteLength : -1;
    return len === bytes ? null : new Error(`capnweb: reply of ${len} bytes`);
  }
  return {
    call(t0: number): void {
      inFlight.begin();
      stub.echo(request).then(
        (reply) => {
          inFlight.end();
          onReply(check(reply), t0);
        },
        (err: unknown) => {
          inFlight.end();
          onReply(err instanceof Error ? err : new Error(String(err)), t0);
        },
      );
    },
    async close() {
      await inFlight.idle();
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close();
      });
    },
  };
}

export function capnwebScenarios(concurrency: number, echoBytes: number): Record<'echo', Scenario> {
  return { echo: echoScenario({ startServer, connectClient }, concurrency, echoBytes) };
}
