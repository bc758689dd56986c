/**
 * Regression tests for the lifecycle findings of the fourth review, fixed in "fixes from review: mesh.stop() during
 * start() ..." (0e3bab8). One test per finding, named after the scenario, asserting what a user relies on. Each was
 * checked to fail on the code before that commit (a7213e0).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  bidi,
  channel,
  connect,
  defineService,
  dialsTo,
  download,
  listen,
  Mesh,
  RpcError,
  serve,
  serverStream,
  Status,
  statusName,
  unary,
  type Channel,
  type ChannelOptions,
  type MeshOptions,
  type RpcSession,
  type Server,
  type ServiceImpl,
} from '../src/index.js';
import { SocketTransport } from '../src/transport/socket.js';
import { connectionCodeName, Flag, FrameType } from '../src/wire/constants.js';
import { encodeFrame } from '../src/wire/frame.js';
import { decodeGoaway, encodePing } from '../src/wire/payloads.js';
import { Sleepy } from './fixtures/lifecycle-service.js';
import { Probe, Svc, svcService } from './fixtures/mesh-service.js';
import { helloFrame, RawPeer, rejectsWithStatus, sleep, socketPath, until, within } from './helpers.js';

const FAST = { initialDelayMs: 20, maxDelayMs: 200, lossSpreadMs: 50 };
const CLEANUP_MS = 3000;
const quiet = (): void => undefined;
const PEER = fileURLToPath(new URL('./fixtures/lifecycle-peer.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---------------------------------------------------------------- helpers

/** A Unix socket address, its file removed after the test. */
function unixUrl(t: TestContext): string {
  const path = socketPath();
  t.after(() => rm(path, { force: true }));
  return `unix://${path}`;
}

/** A mesh node (not started), stopped after the test; `logs` gets `level message` lines. */
function newMesh(t: TestContext, options: MeshOptions, logs: string[] = []): Mesh {
  const mesh = new Mesh({ reconnect: FAST, ...options, log: (level, message) => logs.push(`${level} ${message}`) });
  t.after(() => within(mesh.stop({ graceMs: 0 }), CLEANUP_MS, `mesh ${options.name} to stop`));
  return mesh;
}

function openChannel(t: TestContext, url: string, options: ChannelOptions = {}): Channel {
  const ch = channel(url, { reconnect: FAST, log: quiet, ...options });
  t.after(() => within(ch.close({ graceMs: 0 }), CLEANUP_MS, 'channel close'));
  return ch;
}

async function startServer(t: TestContext, url: string, services: ServiceImpl[], options: { maxConcurrentStreams?: number; peerPingIntervalMs?: number } = {}): Promise<Server> {
  const server = await listen(url, { services, log: quiet, ...options });
  t.after(async () => {
    for (const s of server.sessions) s.destroy();
    await within(server.close({ graceMs: 0 }), CLEANUP_MS, 'server close');
  });
  return server;
}

async function connectTo(t: TestContext, url: string, options: Parameters<typeof connect>[1] = {}): Promise<RpcSession> {
  const session = await within(connect(url, options), CLEANUP_MS, `connect ${url}`);
  t.after(() => session.destroy());
  return session;
}

/** Whether something accepts a connection at `url` (tcp:// or unix://) right now. */
async function accepts(url: string): Promise<boolean> {
  const parsed = new URL(url);
  const socket = parsed.protocol === 'unix:' ? createConnection(parsed.pathname) : createConnection({ host: parsed.hostname, port: Number(parsed.port) });
  try {
    return await within(
      new Promise<boolean>((resolve) => {
        socket.once('connect', () => resolve(true));
        socket.once('error', () => resolve(false));
      }),
      2000,
      `a connection attempt to ${url}`,
    );
  } finally {
    socket.destroy();
  }
}

/** A TCP server that accepts and never says a word; records when each of its sockets closed. */
async function silentPeer(t: TestContext): Promise<{ url: string; sockets: Array<{ socket: Socket; closedAt: number | undefined }> }> {
  const sockets: Array<{ socket: Socket; closedAt: number | undefined }> = [];
  const server = createServer((socket) => {
    const entry = { socket, closedAt: undefined as number | undefined };
    sockets.push(entry);
    socket.on('error', () => undefined);
    socket.on('close', () => (entry.closedAt = performance.now()));
    socket.resume(); // reads (and drops) what comes, so the dialer's FIN is seen
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const { socket } of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { url: `tcp://127.0.0.1:${address.port}`, sockets };
}

/** A raw TCP client speaking frames by hand to a listen() url; destroyed after the test. */
async function rawClient(t: TestContext, url: string): Promise<RawPeer> {
  const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(url).port) });
  t.after(() => {
    socket.destroy();
  });
  await within(once(socket, 'connect'), CLEANUP_MS, 'raw connect');
  return new RawPeer(new SocketTransport(socket, { transport: 'tcp', address: url }));
}

function pings(count: number, first: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => encodeFrame({ type: FrameType.PING, flags: 0, streamId: 0, payload: encodePing(BigInt(first + i)) })));
}

/** A name for a node that is the designated dialer of `other`. */
function dialerOf(other: string, prefix: string): string {
  for (let i = 0; ; i++) if (dialsTo(`${prefix}${i}`, other)) return `${prefix}${i}`;
}

/** Records whether a promise has settled; keeps its rejection handled. */
function watch(promise: Promise<unknown>): { readonly settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** A service that counts its handler starts, with one method of every streaming kind the tests abandon. */
const Counted = defineService('review.lifecycle.v1', {
  ticks: serverStream<null, number>(),
  get: download<null>(),
  chat: bidi<number, number>(),
  /** `ms` of bytes, a 1 KiB chunk every 20 ms. */
  slow: download<{ ms: number }>(),
  hang: unary<null, null>(),
});

function countedService(counts: Record<string, number>): ServiceImpl {
  const enter = (method: string): void => void (counts[method] = (counts[method] ?? 0) + 1);
  return serve(Counted, {
    async *ticks() {
      enter('ticks');
      yield 1;
      yield 2;
    },
    async *get() {
      enter('get');
      yield new Uint8Array(1024);
    },
    async *chat(requests) {
      enter('chat');
      for await (const r of requests) yield r;
    },
    async *slow({ ms }) {
      enter('slow');
      const end = performance.now() + ms;
      while (performance.now() < end) {
        yield new Uint8Array(1024);
        await sleep(20);
      }
    },
    hang: (_request, ctx) =>
      new Promise<null>((_, reject) => {
        enter('hang');
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      }),
  });
}

// ---------------------------------------------------------------- 1. mesh.stop() during start()

void test('mesh.stop() while start() is still binding leaves nothing listening at its address; stop() before start() makes start() reject and listen nowhere', { timeout: 5000 }, async (t) => {
  const url = unixUrl(t);
  const mesh = newMesh(t, { name: 'a', listen: url, peers: { b: unixUrl(t) } });
  const started = mesh.start();
  await within(mesh.stop({ graceMs: 0 }), 2000, 'stop() during start()');
  await within(
    started.catch(() => undefined),
    2000,
    'start() to settle',
  );
  assert.equal(await accepts(url), false, `nothing listens at ${url} after stop()`);
  assert.equal(mesh.peer('b').state, 'closed');
  await assert.rejects(mesh.start(), 'start() after stop() rejects');

  const url2 = unixUrl(t);
  const never = newMesh(t, { name: 'a', listen: url2, peers: { b: unixUrl(t) } });
  await within(never.stop({ graceMs: 0 }), 2000, 'stop() before start()');
  await assert.rejects(never.start(), /stopped/, 'start() after stop() rejects');
  assert.equal(await accepts(url2), false, `nothing listens at ${url2}`);
});

// ---------------------------------------------------------------- 2. close() during a dial's handshake

void test('channel.close() and mesh.stop() during a dial\'s handshake with a peer that never sends HELLO close that socket at once, not after handshakeTimeoutMs', { timeout: 8000 }, async (t) => {
  const peer = await silentPeer(t);

  const ch = openChannel(t, peer.url, { handshakeTimeoutMs: 5000 });
  await until(() => peer.sockets.length === 1, 2000, 'the channel to connect to the silent peer');
  await sleep(50);
  assert.equal(ch.state, 'connecting', 'the handshake is in progress');
  const closing = performance.now();
  await within(ch.close({ graceMs: 0 }), 2000, 'channel.close()');
  await until(() => peer.sockets[0]!.closedAt !== undefined, 1500, "the channel's socket to close");
  const channelMs = peer.sockets[0]!.closedAt! - closing;
  assert.ok(channelMs < 500, `the channel's socket closed ${channelMs.toFixed(0)} ms after close()`);

  const mesh = newMesh(t, { name: 'a', peers: { b: peer.url }, fallbackDialAfterMs: 0, handshakeTimeoutMs: 5000 });
  await mesh.start();
  await until(() => peer.sockets.length === 2, 2000, 'the mesh to connect to the silent peer');
  await sleep(50);
  assert.equal(mesh.peer('b').state, 'connecting', 'the handshake is in progress');
  const stopping = performance.now();
  await within(mesh.stop({ graceMs: 0 }), 2000, 'mesh.stop()');
  await until(() => peer.sockets[1]!.closedAt !== undefined, 1500, "the mesh's socket to close");
  const meshMs = peer.sockets[1]!.closedAt! - stopping;
  assert.ok(meshMs < 500, `the mesh's socket closed ${meshMs.toFixed(0)} ms after stop()`);
  assert.equal(peer.sockets.length, 2, 'no dial after close');
});

// ---------------------------------------------------------------- 3. a dialer reaching the wrong node

void test("a mesh peer's address that leads to another node: calls meant for the peer never run there, the peer is never ready, and the log names the node that answered", { timeout: 8000 }, async (t) => {
  const a = dialerOf('b', 'a');
  const probeC = new Probe();
  const c = newMesh(t, { name: 'c', listen: unixUrl(t), peers: { [a]: null }, services: [svcService('c', probeC)] });
  await c.start();
  const logs: string[] = [];
  // a's config has b's entry pointing at c (a typo, or an address reused after a redeploy)
  const meshA = newMesh(t, { name: a, listen: unixUrl(t), peers: { b: c.url! }, services: [svcService(a)] }, logs);
  const states: string[] = [];
  meshA.on('peer', (e) => states.push(e.state));
  await meshA.start();

  const call = meshA.peer('b').client(Svc).whoami('for b', { waitForReady: true, timeoutMs: 500 });
  const outcome = await call.then(
    (answer) => `answered by node ${answer.node}`,
    (error: unknown) => (error instanceof RpcError ? statusName(error.code) : String(error)),
  );
  assert.equal(outcome, 'DEADLINE_EXCEEDED', 'a waitForReady call to b');
  assert.equal(probeC.count('whoami'), 0, 'no call meant for b ran on c');
  await until(() => logs.some((l) => l.startsWith('warn') && l.includes('"c"')), 3000, "a warn line naming node c in a's log");
  const warning = logs.find((l) => l.startsWith('warn') && l.includes('"c"'))!;
  assert.match(warning, /peer b/, warning);
  assert.notEqual(meshA.peer('b').state, 'ready');
  assert.ok(!states.includes('ready'), `a's peer b was never ready (states: ${states.join(', ')})`);
});

// ---------------------------------------------------------------- 4. abandoned waitForReady streams

void test('a waitForReady serverStream and download abandoned (return()) before any server exists never reach a handler once the server is up', { timeout: 6000 }, async (t) => {
  const url = unixUrl(t);
  const ch = openChannel(t, url);
  const client = ch.client(Counted);
  const ticks = client.ticks(null, { waitForReady: true });
  const bytes = client.get(null, { waitForReady: true });
  assert.deepEqual(await within(ticks.return(), 1000, 'ticks.return()'), { done: true, value: undefined });
  assert.deepEqual(await within(bytes.return(), 1000, 'get.return()'), { done: true, value: undefined });

  const counts: Record<string, number> = {};
  await startServer(t, url, [countedService(counts)]);
  await within(ch.whenReady(), 2000, 'the channel to connect');
  await sleep(500);
  assert.deepEqual(counts, {}, 'no handler ran for the abandoned calls');
  // the server does serve: a call made now reaches it
  const got: number[] = [];
  for await (const n of client.ticks(null, { timeoutMs: 1000 })) got.push(n);
  assert.deepEqual([got, counts], [[1, 2], { ticks: 1 }]);
});

// ---------------------------------------------------------------- 5. an abandoned waitForReady bidi

void test('a waitForReady bidi without a deadline abandoned before any server exists: return() resolves at once, and the handler never runs once the server is up', { timeout: 6000 }, async (t) => {
  const url = unixUrl(t);
  const ch = openChannel(t, url);
  const call = ch.client(Counted).chat({ waitForReady: true });
  const returned = await within(call.return(), 500, 'return() of a bidi waiting for a connection');
  assert.equal(returned.done, true);

  const counts: Record<string, number> = {};
  await startServer(t, url, [countedService(counts)]);
  await within(ch.whenReady(), 2000, 'the channel to connect');
  await sleep(500);
  assert.deepEqual(counts, {}, 'the abandoned bidi never reached its handler');
});

// ---------------------------------------------------------------- 6. a download queued for a slot

void test('a download queued behind a slow one (server maxConcurrentStreams 1) is not failed "no progress" by progressTimeoutMs 300; both complete', { timeout: 6000 }, async (t) => {
  const counts: Record<string, number> = {};
  const server = await startServer(t, 'tcp://127.0.0.1:0', [countedService(counts)], { maxConcurrentStreams: 1 });
  const client = (await connectTo(t, server.url, { progressTimeoutMs: 300 })).client(Counted);
  const drain = async (ms: number): Promise<number> => {
    let n = 0;
    for await (const chunk of client.slow({ ms })) n += chunk.length;
    return n;
  };
  const first = drain(1000);
  const second = drain(100);
  const [a, b] = await within(Promise.all([first, second]), 4000, 'both downloads');
  assert.ok(a > 0 && b > 0, `both delivered bytes (${a}, ${b})`);
  assert.equal(counts.slow, 2);
});

// ---------------------------------------------------------------- 7. ping strikes are forgiven

void test('ping strikes are forgiven once the budget refills: three bursts of 17 PINGs 1 s apart keep the connection; a burst of 100 still gets GOAWAY ENHANCE_YOUR_CALM', { timeout: 8000 }, async (t) => {
  const server = await startServer(t, 'tcp://127.0.0.1:0', [], { peerPingIntervalMs: 20 });
  const polite = await rawClient(t, server.url);
  const rude = await rawClient(t, server.url);
  for (const raw of [polite, rude]) {
    raw.sendBytes(helloFrame());
    await raw.waitFor((f) => f.type === FrameType.HELLO, 1000, "the server's HELLO");
  }
  // the rude one, in parallel: one burst of 100 is closed after the burst of 16 and two strikes
  rude.sendBytes(pings(100, 1));
  for (let burst = 0; burst < 3; burst++) {
    if (burst > 0) await sleep(1000); // 50 refill intervals: the bucket (16) is full again
    polite.sendBytes(pings(17, 1 + 17 * burst)); // one over the bucket: one strike each time
  }
  await within(rude.closed.promise, 2000, 'the server closes the rude connection');
  const goaway = rude.frames.find((f) => f.type === FrameType.GOAWAY);
  assert.ok(goaway !== undefined, 'the rude peer got a GOAWAY');
  const { code, message } = decodeGoaway(goaway.payload);
  assert.equal(connectionCodeName(code), 'ENHANCE_YOUR_CALM', message);
  assert.match(message, /too many pings/);

  await until(() => polite.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0).length === 51 || polite.frames.some((f) => f.type === FrameType.GOAWAY), 1000, 'the acks of the third burst');
  await sleep(100);
  const away = polite.frames.find((f) => f.type === FrameType.GOAWAY);
  assert.equal(away, undefined, `no GOAWAY for three forgiven bursts (got: ${away ? decodeGoaway(away.payload).message : ''})`);
  assert.equal(polite.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0).length, 51, 'every ping answered');
  assert.equal(server.sessions.size, 1, 'the polite connection is still open');
});

// ---------------------------------------------------------------- 8. keepalive after a stall of our own

void test('keepalive (interval 200, timeout 300) does not close a healthy connection after a 600 ms event-loop stall right after its probe was sent; a call works afterwards', { timeout: 8000 }, async (t) => {
  // the server runs in its own process, so it answers the probe during our stall, as a real peer would
  const child = spawn(process.execPath, ['--import', 'tsx', PEER], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin?.destroy();
    await within(exited, CLEANUP_MS, 'the child process exits');
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const url = await within(
    new Promise<string>((resolve) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const line = /^listening (\S+)\n/.exec(out);
        if (line) resolve(line[1]!);
      });
    }),
    5000,
    'the server process to listen',
  ).catch((error: Error) => assert.fail(`${error.message}; stderr: ${stderr}`));

  const session = await connectTo(t, url, { keepaliveIntervalMs: 200, keepaliveTimeoutMs: 300 });
  const keepalive = (session.core as unknown as { keepalive: { probeTimer: unknown } }).keepalive;
  const closed = watch(session.closed);
  // Look for the probe once per turn of the event loop, from an immediate: the turn after keepalive sent its PING, we
  // stall in the check phase, before a later poll phase reads the answer (which the peer sends during the stall), and
  // outside the timers phase, so the probe's timer is the first thing to run when the stall ends.
  const looking = performance.now();
  while (keepalive.probeTimer === undefined) {
    if (performance.now() - looking > 2000) assert.fail('no keepalive probe within 2 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
  const end = Date.now() + 600;
  while (Date.now() < end) {
    // a synchronous stall (a GC pause, a big JSON.parse): the probe's timer expires meanwhile
  }
  await sleep(100);
  assert.equal(closed.settled, false, `the session closed on a healthy peer: ${String(session.core.error)}`);
  assert.equal(await within(session.client(Sleepy).sleep(1), 1000, 'a call after the stall'), 'slept 1');
});

// ---------------------------------------------------------------- 9. a shorter close() grace

void test('close({ graceMs: 5000 }) then close({ graceMs: 0 }) with a call in flight: the second resolves at once and the call fails UNAVAILABLE', { timeout: 5000 }, async (t) => {
  const counts: Record<string, number> = {};
  const server = await startServer(t, 'tcp://127.0.0.1:0', [countedService(counts)]);
  const session = await connectTo(t, server.url);
  const call = session.client(Counted).hang(null);
  call.catch(() => undefined);
  await until(() => counts.hang === 1, 1000, 'the call to reach its handler');
  const first = session.close({ graceMs: 5000, reason: 'duplicate connection: replaced by a newer one' });
  first.catch(() => undefined);
  const start = performance.now();
  await within(session.close({ graceMs: 0 }), 1000, 'close({ graceMs: 0 }) after close({ graceMs: 5000 })');
  const ms = performance.now() - start;
  assert.ok(ms < 1000, `resolved after ${ms.toFixed(0)} ms`);
  await rejectsWithStatus(within(call, 1000, 'the call in flight'), Status.UNAVAILABLE, 'the call in flight');
  await within(first, 1000, 'the first close()');
});

// ---------------------------------------------------------------- 10. a blackholed connection vs a fresh one

/** A TCP proxy to `targetPort` that, once `blackhole` is set, drops every byte both ways without closing anything. */
async function blackholeProxy(t: TestContext, targetPort: () => number): Promise<{ url: string; blackhole: boolean }> {
  const sockets = new Set<Socket>();
  const state = { url: '', blackhole: false };
  const server: NetServer = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort() });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        if (!state.blackhole) {
          client.destroy();
          upstream.destroy();
        }
      });
    }
    client.on('data', (bytes) => void (state.blackhole || upstream.write(bytes)));
    upstream.on('data', (bytes) => void (state.blackhole || client.write(bytes)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  state.url = `tcp://127.0.0.1:${address.port}`;
  return state;
}

void test("the designated dialer's connection goes silently dead (blackholed) and the peer restarts and dials in: the new connection replaces the dead one within 4 s and calls work (keepalive 60 s)", { timeout: 10_000 }, async (t) => {
  const A = 'a';
  const D = dialerOf(A, 'd');
  const common = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, fallbackDialAfterMs: 200, keepaliveIntervalMs: 60_000 };
  let aPort = 0;
  const proxy = await blackholeProxy(t, () => aPort);
  const oldA = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('old a')], ...common });
  await oldA.start();
  aPort = Number(new URL(oldA.url!).port);
  const meshD = newMesh(t, { name: D, listen: 'tcp://127.0.0.1:0', peers: { [A]: proxy.url }, services: [svcService(D)], ...common });
  await meshD.start();
  assert.equal((await meshD.peer(A).client(Svc).whoami('first', { waitForReady: true, timeoutMs: 3000 })).node, 'old a');

  // a's host loses the connection silently, and a comes back as a new process that dials d itself
  proxy.blackhole = true;
  await within(oldA.stop({ graceMs: 0 }), CLEANUP_MS, 'the old a to stop');
  const dead = [...(meshD.peer(A).sessions.get('control') ?? [])];
  assert.equal(dead.length, 1);
  const newA = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: meshD.url! }, services: [svcService('new a')], ...common });
  const restarted = performance.now();
  await newA.start();

  const replaced = (): boolean => {
    const sessions = [...(meshD.peer(A).sessions.get('control') ?? [])];
    return sessions.length === 1 && sessions[0] !== dead[0] && meshD.peer(A).state === 'ready';
  };
  await until(replaced, 4500, "d's connection to a replaced by the new one");
  t.diagnostic(`replaced ${(performance.now() - restarted).toFixed(0)} ms after the restart`);
  const answer = await meshD.peer(A).client(Svc).whoami('after', { timeoutMs: 1000 }).catch((error: unknown) => {
    assert.ok(error instanceof RpcError);
    return assert.fail(`d -> a failed: ${statusName(error.code)} ${error.message}`);
  });
  assert.equal(answer.node, 'new a');
});

void test('the same, but the new connection goes away again during the ping check: the link does not stay "ready" with no connection; it redials and reaches the next incarnation', { timeout: 15_000 }, async (t) => {
  const A = 'a';
  const D = dialerOf(A, 'd');
  const common = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, fallbackDialAfterMs: 200, keepaliveIntervalMs: 60_000 };
  let aPort = 0;
  const proxy = await blackholeProxy(t, () => aPort);
  const a1 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('a1')], ...common });
  await a1.start();
  aPort = Number(new URL(a1.url!).port);
  const meshD = newMesh(t, { name: D, listen: 'tcp://127.0.0.1:0', peers: { [A]: proxy.url }, services: [svcService(D)], ...common });
  await meshD.start();
  assert.equal((await meshD.peer(A).client(Svc).whoami('first', { waitForReady: true, timeoutMs: 3000 })).node, 'a1');

  proxy.blackhole = true;
  await within(a1.stop({ graceMs: 0 }), CLEANUP_MS, 'a1 to stop');
  const [dead] = [...(meshD.peer(A).sessions.get('control') ?? [])];
  // a2 dials d and goes away again while d is still checking its dead connection (3 s ping check)
  const a2 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: meshD.url! }, services: [svcService('a2')], ...common });
  await a2.start();
  await until(() => (meshD.peer(A).sessions.get('control')?.size ?? 0) === 2, 3000, 'a2 offered d a second connection');
  await within(a2.stop({ graceMs: 0 }), CLEANUP_MS, 'a2 to stop');
  // a3 waits to be dialed, at the address d dials
  const a3 = newMesh(t, { name: A, listen: 'tcp://127.0.0.1:0', peers: { [D]: null }, services: [svcService('a3')], ...common });
  await a3.start();
  aPort = Number(new URL(a3.url!).port);
  proxy.blackhole = false;
  // a call made while d still believed in the dead connection would fail with it: wait until d knows
  await until(() => !(meshD.peer(A).sessions.get('control')?.has(dead!) ?? false), 5000, 'd to drop the dead connection');
  const answer = await meshD.peer(A).client(Svc).whoami('after', { waitForReady: true, timeoutMs: 8000 });
  assert.equal(answer.node, 'a3');
});
