// A process of the idle-connection-rss fleet, run as plain JS (the server with --expose-gc):
//   conn-server  accepts connections on 127.0.0.1 and holds them; on `measure` it collects garbage and reports its
//                memory and how many connections it holds (gridwire: handshake done, still open)
//   conn-client  on `open n`, opens n more connections and holds them idle (gridwire: connect(), handshake done, no
//                call), OPEN_CONCURRENCY at a time, and reports how long that took and its memory
// raw is node:net with nothing on top: a socket with a 'data' listener on the server, as any protocol would have.
// gridwire (either checkout) runs with default options (keepalive after 30 s of silence: the connections stay idle).
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnSpec, ParentMsg } from '../messages.js';
import { loadGridwire } from '../systems/gridwire-api.js';
import { isGridwire } from '../systems/index.js';
import { listenLoopback } from '../systems/io.js';
import { fail, send, settledMemory } from './child.js';

/** Connections being opened at once by one client process (the server's listen backlog is 511). */
const OPEN_CONCURRENCY = 64;

/** Starts the server; returns the address to dial and a function counting the connections it holds. */
async function startServer(spec: ConnSpec): Promise<{ url: string; count(): number }> {
  if (!isGridwire(spec.system)) {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    const { target } = await listenLoopback(server);
    return { url: target, count: () => sockets.size };
  }
  const gw = await loadGridwire(spec.library);
  const Idle = gw.defineService('bench.conn', { ping: gw.unary() });
  let open = 0;
  const server = await gw.listen('tcp://127.0.0.1:0', {
    services: [gw.serve(Idle, { ping: () => null })],
    onSession: (session) => {
      open++;
      void session.closed.then(() => open--);
    },
  });
  return { url: server.url, count: () => open };
}

/** A client's way of opening one connection and holding it. */
async function opener(spec: ConnSpec): Promise<() => Promise<unknown>> {
  if (!isGridwire(spec.system)) {
    const i = spec.url.lastIndexOf(':');
    const host = spec.url.slice(0, i);
    const port = Number(spec.url.slice(i + 1));
    return () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host, port });
        socket.once('connect', () => {
          socket.off('error', reject);
          socket.on('error', () => undefined);
          resolve(socket);
        });
        socket.once('error', reject);
      });
  }
  const gw = await loadGridwire(spec.library);
  return () => gw.connect(spec.url);
}

async function runServer(spec: ConnSpec): Promise<void> {
  const server = await startServer(spec);
  process.on('message', (m: ParentMsg) => {
    if (m.t === 'stop') process.exit(0);
    if (m.t === 'measure') {
      settledMemory().then((memory) => send({ t: 'measured', connections: server.count(), memory }), fail);
    }
  });
  send({ t: 'ready', target: server.url, memory: await settledMemory() });
}

async function runClient(spec: ConnSpec): Promise<void> {
  const open = await opener(spec);
  const held: unknown[] = [];
  let queue = Promise.resolve();
  process.on('message', (m: ParentMsg) => {
    if (m.t === 'stop') process.exit(0);
    if (m.t !== 'open') return;
    // `open` requests are served one after the other
    queue = queue
      .then(async () => {
        const t0 = performance.now();
        let left = m.count;
        const lane = async (): Promise<void> => {
          while (left > 0) {
            left--;
            held.push(await open());
          }
        };
        await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, m.count) }, lane));
        const ms = performance.now() - t0;
        send({ t: 'opened', total: held.length, ms, memory: await settledMemory() });
      })
      .catch(fail);
  });
  send({ t: 'ready', target: spec.url, memory: await settledMemory() });
}

export function runConn(spec: ConnSpec): Promise<void> {
  return spec.role === 'conn-server' ? runServer(spec) : runClient(spec);
}
