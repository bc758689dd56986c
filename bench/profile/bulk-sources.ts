// CPU time per GiB of a bulk transfer on each side, per source kind and per way of reading, in two processes over
// loopback tcp://. Not a throughput bench (bench/run.ts is): on a shared machine wall-clock swings, CPU per GiB does not
// much. Each line is one measured transfer after a warm-up transfer of the same kind in the same processes.
//
//   npx tsx bench/profile/bulk-sources.ts [--lib DIR] [--mib N] [--runs N] [--kinds K,...] [--ways up,down]
//                                         [--reader iter,pipe] [--chunk BYTES] [--cpu-prof DIR]
//     --lib DIR     the gridwire checkout to measure (DIR/src/index.ts, through tsx; default: this one), or a compiled
//                   index.js. Without tsx at all (as users run it: in a process that loaded gridwire and node:tls
//                   through tsx, a receiver's socket buffers set off a mark-compact every ~30 ms, and its user CPU per
//                   GiB doubles or triples; compiled, it does not):
//                     npx tsc -p tsconfig.build.json --outDir /tmp/gw && npx tsc --outDir /tmp/prof --module nodenext \
//                       --target es2022 --types node bench/profile/bulk-sources.ts && \
//                       node /tmp/prof/bulk-sources.js --lib /tmp/gw/index.js
//     --mib N       MiB per measured transfer (default 1024); the warm-up moves a quarter of that
//     --kinds       sources: gen (async generator), sync (a generator function*), readable (a Node Readable pushing
//                   chunks), fs (fs.createReadStream of a file in /dev/shm, made once), web (a web ReadableStream), bytes (one
//                   Uint8Array of 256 MiB per call), raw (a bare node:net socket, no gridwire: writes of --chunk bytes
//                   with back pressure, the receiver counts 'data' bytes). Default: all
//     --ways        up (client sends, the server's handler reads), down (server sends, the client reads)
//     --reader      iter (`for await` counting bytes), pipe (pipeline() into a Writable that takes each chunk at once)
//     --chunk       chunk bytes of the sources (default 65536)
//     --server-args node flags for the server process (e.g. "--trace-gc")
//     --hops        also count promises and process.nextTick callbacks created per chunk on each side (async_hooks:
//                   the CPU figures of such a run are not comparable)
//     --cpu-prof    write V8 CPU profiles of the server process into DIR/server-KIND-RUN/ (the largest file is its main
//                   thread; the others, tsx's loader); for the client's, run this script with node --cpu-prof --import tsx
// Output: one line per transfer: kind, way, reader, MiB/s (wall clock: noisy), and user+sys ms per GiB for the sender
// and the receiver.
import { createHook } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const MiB = 1024 * 1024;
const HERE = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(HERE), '..', '..');
const KINDS = ['raw', 'gen', 'sync', 'readable', 'fs', 'web', 'bytes'] as const;
type Kind = (typeof KINDS)[number];
const BYTES_CALL_MIB = 256;
let bytesBody: Uint8Array | undefined;
/** The `bytes` kind's body: made (and its pages touched) once per process, outside every measured transfer. */
function bytesOf(n: number): Uint8Array {
  bytesBody ??= new Uint8Array(BYTES_CALL_MIB * MiB).fill(0x5a);
  return n === bytesBody.length ? bytesBody : bytesBody.subarray(0, n);
}
const FS_FILE = '/dev/shm/gridwire-bulk-sources.bin';

interface Cpu {
  user: number;
  system: number;
  /** Promises and process.nextTick callbacks created so far (counted only with --hops). */
  promises: number;
  ticks: number;
}

let promisesMade = 0;
let ticksMade = 0;
/** --hops: count every promise and nextTick this process creates (async_hooks; slows everything down). */
function countHops(): void {
  createHook({
    init(_id, type) {
      if (type === 'PROMISE') promisesMade++;
      else if (type === 'TickObject') ticksMade++;
    },
  }).enable();
}

function sample(): Cpu {
  return { ...process.cpuUsage(), promises: promisesMade, ticks: ticksMade };
}
interface Job {
  kind: Kind;
  way: 'up' | 'down';
  reader: 'iter' | 'pipe';
  bytes: number;
  chunk: number;
}
type ToChild = { t: 'cpu'; id: number } | { t: 'lib'; lib: string } | { t: 'exit' } | { t: 'raw-send'; id: number; bytes: number; chunk: number };
type FromChild = { t: 'ready'; url: string; rawPort: number } | { t: 'cpu'; id: number; cpu: Cpu } | { t: 'raw-sent'; id: number };

// ---------------------------------------------------------------- sources

function sourceOf(kind: Kind, bytes: number, chunkBytes: number): unknown {
  const chunk = new Uint8Array(chunkBytes).fill(0x5a);
  switch (kind) {
    case 'gen':
      return (async function* gen() {
        for (let left = bytes; left > 0; left -= chunkBytes) yield left >= chunkBytes ? chunk : chunk.subarray(0, left);
      })();
    case 'sync':
      return (function* gen() {
        for (let left = bytes; left > 0; left -= chunkBytes) yield left >= chunkBytes ? chunk : chunk.subarray(0, left);
      })();
    case 'readable': {
      let left = bytes;
      const buffer = Buffer.from(chunk.buffer);
      return new Readable({
        highWaterMark: chunkBytes,
        read() {
          if (left <= 0) return void this.push(null);
          const n = Math.min(left, chunkBytes);
          left -= n;
          this.push(n === chunkBytes ? buffer : buffer.subarray(0, n));
        },
      });
    }
    case 'fs':
      return fs.createReadStream(FS_FILE, { start: 0, end: bytes - 1, highWaterMark: chunkBytes });
    case 'web': {
      let left = bytes;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (left <= 0) return controller.close();
          const n = Math.min(left, chunkBytes);
          left -= n;
          controller.enqueue(n === chunkBytes ? chunk : chunk.subarray(0, n));
        },
      });
    }
    default:
      throw new Error(`no source for ${kind}`);
  }
}

/** `fs` needs its file, of at least `bytes`: made once, in page cache (tmpfs). */
function ensureFsFile(bytes: number): void {
  if (fs.existsSync(FS_FILE) && fs.statSync(FS_FILE).size >= bytes) return;
  const fd = fs.openSync(FS_FILE, 'w');
  const block = Buffer.alloc(MiB, 0x5a);
  for (let at = 0; at < bytes; at += MiB) fs.writeSync(fd, block);
  fs.closeSync(fd);
}

/** Reads a body: `for await` counting, or pipeline() into a Writable that takes each chunk at once. */
async function readBody(body: AsyncIterable<Uint8Array>, reader: 'iter' | 'pipe'): Promise<number> {
  let n = 0;
  if (reader === 'iter') {
    for await (const chunk of body) n += chunk.length;
    return n;
  }
  await pipeline(
    body,
    new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Uint8Array, _encoding, callback) {
        n += chunk.length;
        callback();
      },
    }),
  );
  return n;
}

// ---------------------------------------------------------------- the gridwire service

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Api = any;

function defineBulk(api: Api): unknown {
  return api.defineService('profile.bulk', {
    put: api.upload(),
    get: api.download(),
  });
}

/** A checkout (its src/index.ts, through tsx), or a compiled index.js (e.g. `npm run build`'s dist/index.js). */
async function loadLib(lib: string): Promise<Api> {
  return import(pathToFileURL(lib.endsWith('.js') ? lib : path.join(lib, 'src', 'index.ts')).href);
}

// ---------------------------------------------------------------- server process

async function serverMain(): Promise<void> {
  process.on('disconnect', () => process.exit(0)); // the driver is gone
  const send = (m: FromChild): boolean => process.send!(m);
  const lib = await new Promise<string>((resolve) => process.once('message', (m: ToChild) => resolve((m as { lib: string }).lib)));
  const api = await loadLib(lib);
  const Bulk = defineBulk(api);
  const impl = api.serve(Bulk, {
    async put(req: { reader: 'iter' | 'pipe' }, body: AsyncIterable<Uint8Array>) {
      return { bytes: await readBody(body, req.reader) };
    },
    get(req: { kind: Kind; bytes: number; chunk: number }) {
      if (req.kind === 'bytes') return bytesOf(req.bytes);
      return sourceOf(req.kind, req.bytes, req.chunk);
    },
  });
  const server = await api.listen('tcp://127.0.0.1:0', { services: [impl] });
  let rawSocket: net.Socket | undefined;
  let rawReceived = 0;
  const raw = net.createServer((socket) => {
    socket.setNoDelay(true);
    rawSocket = socket;
    socket.on('data', (chunk: Buffer) => {
      rawReceived += chunk.length;
      if (rawReceived >= rawExpected && rawDone !== undefined) {
        const done = rawDone;
        rawDone = undefined;
        done();
      }
    });
  });
  let rawExpected = 0;
  let rawDone: (() => void) | undefined;
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  process.on('message', (m: ToChild) => {
    if (m.t === 'cpu') send({ t: 'cpu', id: m.id, cpu: sample() });
    else if (m.t === 'raw-send') {
      void rawWrite(rawSocket!, m.bytes, m.chunk).then(() => send({ t: 'raw-sent', id: m.id }));
    } else if (m.t === 'exit') {
      void server.close().then(() => process.exit(0));
    }
  });
  // the raw upload's receiver counts to what the client announced
  process.on('message', (m: { t: string; bytes?: number; id?: number }) => {
    if (m.t !== 'raw-expect') return;
    rawReceived = 0;
    rawExpected = m.bytes!;
    rawDone = () => send({ t: 'raw-sent', id: m.id! });
  });
  send({ t: 'ready', url: server.url, rawPort: (raw.address() as net.AddressInfo).port });
}

async function rawWrite(socket: net.Socket, bytes: number, chunkBytes: number): Promise<void> {
  const chunk = Buffer.alloc(chunkBytes, 0x5a);
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, chunkBytes);
    left -= n;
    if (!socket.write(n === chunkBytes ? chunk : chunk.subarray(0, n))) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

// ---------------------------------------------------------------- client process (the driver)

class Server {
  private nextId = 0;
  private readonly waiting = new Map<number, (m: FromChild) => void>();
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromChild) => {
      if ('id' in m) {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        w?.(m);
      }
    });
  }
  ask(message: Record<string, unknown>): Promise<FromChild> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ ...message, id });
    });
  }
  async cpu(): Promise<Cpu> {
    return ((await this.ask({ t: 'cpu' })) as { cpu: Cpu }).cpu;
  }
}

function msPerGiB(before: Cpu, after: Cpu, bytes: number, chunk: number): { user: number; sys: number; promises: number; ticks: number } {
  const gib = bytes / (1024 * MiB);
  const chunks = bytes / chunk;
  return {
    user: (after.user - before.user) / 1000 / gib,
    sys: (after.system - before.system) / 1000 / gib,
    promises: (after.promises - before.promises) / chunks,
    ticks: (after.ticks - before.ticks) / chunks,
  };
}

async function transfer(api: Api, client: Api, server: Server, rawPort: number, job: Job): Promise<string> {
  const t0 = performance.now();
  const clientBefore = sample();
  const serverBefore = await server.cpu();
  let moved = 0;
  if (job.kind === 'raw') {
    const socket = net.connect(rawPort, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once('connect', resolve));
    if (job.way === 'up') {
      const done = server.ask({ t: 'raw-expect', bytes: job.bytes });
      await rawWrite(socket, job.bytes, job.chunk);
      await done;
      moved = job.bytes;
    } else {
      let n = 0;
      const all = new Promise<void>((resolve) =>
        socket.on('data', (chunk: Buffer) => {
          n += chunk.length;
          if (n >= job.bytes) resolve();
        }),
      );
      await new Promise((r) => setTimeout(r, 20)); // the server has seen the connection
      await server.ask({ t: 'raw-send', bytes: job.bytes, chunk: job.chunk });
      await all;
      moved = n;
    }
    socket.destroy();
  } else if (job.way === 'up') {
    if (job.kind === 'bytes') {
      const call = BYTES_CALL_MIB * MiB;
      for (let left = job.bytes; left > 0; left -= call) moved += (await client.put({ reader: job.reader }, bytesOf(Math.min(left, call)))).bytes;
    } else {
      moved = (await client.put({ reader: job.reader }, sourceOf(job.kind, job.bytes, job.chunk))).bytes;
    }
  } else {
    const calls = job.kind === 'bytes' ? Math.ceil(job.bytes / (BYTES_CALL_MIB * MiB)) : 1;
    for (let i = 0; i < calls; i++) {
      const bytes = job.kind === 'bytes' ? Math.min(BYTES_CALL_MIB * MiB, job.bytes - i * BYTES_CALL_MIB * MiB) : job.bytes;
      moved += await readBody(client.get({ kind: job.kind, bytes, chunk: job.chunk }), job.reader);
    }
  }
  const serverAfter = await server.cpu();
  const clientAfter = sample();
  const seconds = (performance.now() - t0) / 1000;
  if (moved !== job.bytes) throw new Error(`${job.kind} ${job.way}: moved ${moved} of ${job.bytes} bytes`);
  const c = msPerGiB(clientBefore, clientAfter, job.bytes, job.chunk);
  const s = msPerGiB(serverBefore, serverAfter, job.bytes, job.chunk);
  const [sender, receiver] = job.way === 'up' ? [c, s] : [s, c];
  void api;
  const f = (x: number): string => x.toFixed(0).padStart(5);
  return (
    `${job.kind.padEnd(8)} ${job.way.padEnd(4)} ${job.reader.padEnd(4)} ${(job.bytes / MiB / seconds).toFixed(0).padStart(6)} MiB/s` +
    `  sender ${f(sender.user + sender.sys)} ms/GiB (${f(sender.user)} user ${f(sender.sys)} sys)` +
    `  receiver ${f(receiver.user + receiver.sys)} ms/GiB (${f(receiver.user)} user ${f(receiver.sys)} sys)` +
    (process.env.PROFILE_HOPS === '1'
      ? `  per chunk: sender ${sender.promises.toFixed(2)} promises ${sender.ticks.toFixed(2)} ticks, receiver ${receiver.promises.toFixed(2)} promises ${receiver.ticks.toFixed(2)} ticks`
      : '')
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lib: { type: 'string', default: REPO },
      mib: { type: 'string', default: '1024' },
      runs: { type: 'string', default: '1' },
      kinds: { type: 'string', default: KINDS.join(',') },
      ways: { type: 'string', default: 'up,down' },
      reader: { type: 'string', default: 'iter' },
      chunk: { type: 'string', default: '65536' },
      'cpu-prof': { type: 'string' },
      'server-args': { type: 'string', default: '' },
      hops: { type: 'boolean', default: false },
      child: { type: 'boolean', default: false },
    },
  });
  if (values.hops) process.env.PROFILE_HOPS = '1'; // the server process inherits it
  if (process.env.PROFILE_HOPS === '1') countHops();
  if (values.child) return serverMain();
  const lib = path.resolve(values.lib);
  const kinds = values.kinds.split(',') as Kind[];
  const ways = values.ways.split(',') as Array<'up' | 'down'>;
  const readers = values.reader.split(',') as Array<'iter' | 'pipe'>;
  const bytes = Number(values.mib) * MiB;
  const chunk = Number(values.chunk);
  if (kinds.includes('fs')) ensureFsFile(bytes);
  const api = await loadLib(lib);
  const Bulk = defineBulk(api);
  console.log(`# ${lib}: ${values.mib} MiB per transfer, chunks of ${chunk} bytes`);
  for (let run = 0; run < Number(values.runs); run++) {
    for (const kind of kinds) {
      // fresh processes per kind, so that one kind's JIT feedback does not shape another's
      // this file compiled to JS runs without tsx, and so does its server process
      const execArgv = [...(HERE.endsWith('.ts') ? ['--import', 'tsx'] : []), ...values['server-args'].split(' ').filter((a) => a !== '')];
      if (values['cpu-prof'] !== undefined) execArgv.push('--cpu-prof', `--cpu-prof-dir=${path.join(values['cpu-prof'], `server-${kind}-${run}`)}`);
      const child = fork(HERE, ['--child'], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const server = new Server(child);
      const ready = new Promise<{ url: string; rawPort: number }>((resolve) =>
        child.on('message', (m: FromChild) => {
          if (m.t === 'ready') resolve(m);
        }),
      );
      child.send({ t: 'lib', lib });
      const { url, rawPort } = await ready;
      const session = await api.connect(url);
      const client = session.client(Bulk);
      for (const way of ways) {
        for (const reader of kind === 'raw' ? ['iter' as const] : readers) {
          await transfer(api, client, server, rawPort, { kind, way, reader, bytes: Math.max(MiB, bytes >> 2), chunk }); // warm-up
          console.log(await transfer(api, client, server, rawPort, { kind, way, reader, bytes, chunk }));
        }
      }
      await session.close();
      child.send({ t: 'exit' });
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
}

await main();
