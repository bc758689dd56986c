// One process of the connrss suite, run as plain JS (compiled by procs.ts), server with --expose-gc:
//   node --expose-gc conn-worker.js server <raw|gridwire>   accept connections on 127.0.0.1 and hold them; on
//                                                           `measure`, collect garbage and report memory and how many
//                                                           connections it holds (gridwire: handshake done, open)
//   node --expose-gc conn-worker.js client <raw|gridwire> <url>
//                                                           on `open n`, open n more connections (gridwire:
//                                                           connect(), handshake done, no calls) and hold them idle
// raw is node:net with nothing on top: a socket with a 'data' listener on the server, as any protocol would have.
// gridwire runs with default options (keepalive every 30 s of silence, so the connections stay idle).
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type * as Gridwire from '../../src/index.js';
import type { FleetChildMsg, FleetMemory, FleetParentMsg } from './messages.js';

/** Connections being opened at once by one client process (the server's listen backlog is 511). */
const OPEN_CONCURRENCY = 64;
const HOST = '127.0.0.1';

function send(msg: FleetChildMsg): void {
  process.send?.(msg);
}

function fail(err: unknown): never {
  send({ t: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}

const collectGarbage = (globalThis as { gc?: () => void }).gc;

/** Memory after full collections (with --expose-gc): what the process retains, not what the collector has not reached. */
async function settledMemory(): Promise<FleetMemory> {
  for (let i = 0; i < 3; i++) {
    collectGarbage?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external, arrayBuffers };
}

type System = 'raw' | 'gridwire';

async function loadGridwire(): Promise<typeof Gridwire> {
  return import('../../src/index.js');
}

/** Starts the server; returns its url and a function counting the connections it holds. */
async function startServer(system: System): Promise<{ url: string; count(): number }> {
  if (system === 'raw') {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, resolve);
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    return { url: `tcp://${HOST}:${address.port}`, count: () => sockets.size };
  }
  const gw = await loadGridwire();
  const Idle = gw.defineService('bench.conn', { ping: gw.unary<null, null>() });
  let open = 0;
  const server = await gw.listen(`tcp://${HOST}:0`, {
    services: [gw.serve(Idle, { ping: () => null })],
    onSession: (session) => {
      open++;
      void session.closed.then(() => open--);
    },
  });
  return { url: server.url, count: () => open };
}

/** A client's way of opening one connection and holding it. */
async function opener(system: System, url: string): Promise<() => Promise<unknown>> {
  if (system === 'raw') {
    const port = Number(new URL(url).port);
    return () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: HOST, port });
        socket.once('connect', () => {
          socket.off('error', reject);
          socket.on('error', () => undefined);
          resolve(socket);
        });
        socket.once('error', reject);
      });
  }
  const gw = await loadGridwire();
  return () => gw.connect(url);
}

async function main(): Promise<void> {
  process.on('disconnect', () => process.exit(1));
  const [role, system, url] = process.argv.slice(2);
  if (system !== 'raw' && system !== 'gridwire') throw new Error(`unknown system ${system}`);
  if (role === 'server') {
    const server = await startServer(system);
    process.on('message', (m: FleetParentMsg) => {
      if (m.t === 'stop') process.exit(0);
      if (m.t === 'measure') {
        settledMemory().then((memory) => send({ t: 'measured', connections: server.count(), memory }), fail);
      }
    });
    send({ t: 'ready', url: server.url, memory: await settledMemory() });
    return;
  }
  if (role !== 'client' || url === undefined) throw new Error('usage: conn-worker.js server <system> | client <system> <url>');
  const open = await opener(system, url);
  const held: unknown[] = [];
  let queue = Promise.resolve();
  process.on('message', (m: FleetParentMsg) => {
    if (m.t === 'stop') process.exit(0);
    if (m.t !== 'open') return;
    // `open` requests are served one after the other
    queue = queue.then(async () => {
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
    }).catch(fail);
  });
  send({ t: 'ready', url, memory: await settledMemory() });
}

main().catch(fail);
