/**
 * Connection lifecycle over real sockets: version negotiation in both directions, peers that are not gridwire and
 * the server's log of them, keepalive against a frozen process (SIGSTOP) and on a healthy idle connection, the budget
 * for the peer's pings, the bulk progress watchdog (and that it never blames the peer for a stall of our own), and a
 * server's graceful shutdown with calls in flight, a call racing its GOAWAY and a call outliving the grace period.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  connect,
  defineService,
  download,
  listen,
  RpcError,
  serve,
  Status,
  statusName,
  upload,
  type CallContext,
  type ConnectOptions,
  type ListenOptions,
  type RpcSession,
  type Server,
  type ServiceImpl,
} from '../src/index.js';
import type { LogLevel } from '../src/log.js';
import { SessionError } from '../src/session/errors.js';
import { listenOn } from '../src/transport/net.js';
import { SocketTransport } from '../src/transport/socket.js';
import { connectionCodeName, Flag, FrameType } from '../src/wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../src/wire/errors.js';
import { encodeFrame } from '../src/wire/frame.js';
import { encodeHello } from '../src/wire/hello.js';
import { decodeGoaway, encodePing } from '../src/wire/payloads.js';
import { Sleepy, sleepyService } from './fixtures/lifecycle-service.js';
import { deferred, helloFrame, RAW_HELLO_SETTINGS, RawPeer, rejectsWithStatus, sleep, until, within, type Deferred, type RawFrame } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PEER = fileURLToPath(new URL('./fixtures/lifecycle-peer.ts', import.meta.url));
const CLEANUP_MS = 3_000;
/** What both sides must say when the ranges do not overlap: we speak 1..1, the peer 2..2. */
const MISMATCH = /ours 1\.\.1, theirs 2\.\.2/;

// ---------------------------------------------------------------- helpers

interface LogLine {
  level: LogLevel;
  message: string;
}

/** listen() on a free loopback port with its log collected; sessions destroyed and the server closed after the test. */
async function startServer(t: TestContext, options: ListenOptions = {}): Promise<{ server: Server; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const server = await listen('tcp://127.0.0.1:0', { log: (level, message) => logs.push({ level, message }), ...options });
  t.after(async () => {
    for (const s of server.sessions) s.destroy();
    await within(server.close({ graceMs: 0 }), CLEANUP_MS, 'server close');
  });
  return { server, logs };
}

async function connectTo(t: TestContext, url: string, options: ConnectOptions = {}): Promise<RpcSession> {
  const session = await within(connect(url, options), CLEANUP_MS, `connect ${url}`);
  t.after(() => session.destroy());
  return session;
}

/** A raw TCP client speaking frames by hand to a listen() url; `address` is how the server names it in its log. */
async function rawClient(t: TestContext, url: string): Promise<{ raw: RawPeer; address: string }> {
  const port = Number(/:(\d+)$/.exec(url)?.[1]);
  const socket = createConnection({ host: '127.0.0.1', port });
  t.after(() => {
    socket.destroy();
  });
  await within(once(socket, 'connect'), CLEANUP_MS, 'raw connect');
  const raw = new RawPeer(new SocketTransport(socket, { transport: 'tcp', address: url }));
  return { raw, address: `tcp://127.0.0.1:${socket.localPort}` };
}

/** A HELLO frame of a peer that speaks protocol version 2 only. */
function helloV2(): Uint8Array {
  return encodeFrame({
    type: FrameType.HELLO,
    flags: 0,
    streamId: 0,
    payload: encodeHello({ versionMin: 2, versionMax: 2, settings: RAW_HELLO_SETTINGS }),
  });
}

/** The first GOAWAY among `frames`, decoded, with its position. */
function goawayOf(frames: readonly RawFrame[]): { code: string; message: string; index: number } {
  const index = frames.findIndex((f) => f.type === FrameType.GOAWAY);
  assert.ok(index >= 0, `no GOAWAY among the frames received (types ${frames.map((f) => f.type).join(', ') || 'none'})`);
  const { code, message } = decodeGoaway(frames[index]!.payload);
  return { code: connectionCodeName(code), message, index };
}

/** The one warn line of `logs` (fails if there are more or none). */
function oneWarning(logs: readonly LogLine[]): string {
  const warnings = logs.filter((l) => l.level === 'warn');
  assert.equal(warnings.length, 1, `expected one warn line, got ${JSON.stringify(logs)}`);
  return warnings[0]!.message;
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

/** Starts test/fixtures/lifecycle-peer.ts; continued (if stopped), killed and reaped after the test whatever happens. */
function spawnPeer(t: TestContext): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', PEER], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    child.stdin?.destroy();
    await within(exited, CLEANUP_MS, 'the child process exits');
  });
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const line = /^listening (\S+)\n/.exec(out);
      if (line) resolve(line[1]!);
    });
    child.once('exit', (code, signal) => reject(new Error(`lifecycle-peer exited (${code ?? signal}) before listening: ${stderr}`)));
    child.once('error', reject);
  });
  url.catch(() => undefined);
  return { child, url };
}

type HandleKind = 'TCPSocketWrap' | 'TCPServerWrap' | 'Timeout';
const HANDLE_KINDS: readonly HandleKind[] = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];

/** Sockets, listening servers and (ref'd) timers this process holds, by libuv resource name. */
function handleCounts(): Record<HandleKind, number> {
  const counts: Record<HandleKind, number> = { TCPSocketWrap: 0, TCPServerWrap: 0, Timeout: 0 };
  for (const name of process.getActiveResourcesInfo()) if ((HANDLE_KINDS as readonly string[]).includes(name)) counts[name as HandleKind]++;
  return counts;
}

// ---------------------------------------------------------------- services

/** Bulk methods whose handlers stall on purpose, for the progress watchdog. */
const Transfer = defineService('test.lifecycle.transfer.v1', {
  /** Sends one 1 KiB chunk, then neither sends nor ends until its signal aborts. */
  stalledDownload: download<null>(),
  /** Sends `chunks` chunks of `bytes` bytes, chunk i filled with i + 1, as fast as credit allows. */
  quickDownload: download<{ chunks: number; bytes: number }>(),
  /** Reads one chunk of the body, then stops reading until its signal aborts. */
  stalledUpload: upload<null, number>(),
});

interface TransferHooks {
  /** Resolves with ctx.signal.reason when a stalled handler is aborted. */
  aborted: Deferred<unknown>;
  /** Resolves when stalledUpload has read its first chunk. */
  readOne: Deferred<void>;
}

function transferService(hooks: TransferHooks): ServiceImpl {
  const untilAborted = async (ctx: CallContext): Promise<void> => {
    if (!ctx.signal.aborted) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    hooks.aborted.resolve(ctx.signal.reason);
  };
  return serve(Transfer, {
    async *stalledDownload(_request, ctx) {
      yield new Uint8Array(1024).fill(7);
      await untilAborted(ctx);
    },
    async *quickDownload({ chunks, bytes }) {
      for (let i = 0; i < chunks; i++) yield new Uint8Array(bytes).fill(i + 1);
    },
    async stalledUpload(_request, body, ctx) {
      await body.next();
      hooks.readOne.resolve();
      await untilAborted(ctx);
      throw ctx.signal.reason as Error;
    },
  });
}

const transferHooks = (): TransferHooks => ({ aborted: deferred<unknown>(), readOne: deferred() });

function assertStatus(value: unknown, code: Status, what: string): void {
  assert.ok(value instanceof RpcError, `${what}: expected an RpcError, got ${String(value)}`);
  assert.equal(value.code, code, `${what}: expected ${statusName(code)}, got ${statusName(value.code)} (${value.message})`);
}

// ---------------------------------------------------------------- tests

void describe('lifecycle: protocol version mismatch', () => {
  void test('a peer that speaks only version 2 dials a server: it gets GOAWAY VERSION_MISMATCH "ours 1..1, theirs 2..2" before the close; the server logs one warning naming it and keeps serving', { timeout: 5000 }, async (t) => {
    const { server, logs } = await startServer(t, { services: [sleepyService()] });
    const { raw, address } = await rawClient(t, server.url);
    raw.sendBytes(helloV2());
    await within(raw.ended.promise, 3000, 'the server ends the connection');
    // frames are recorded as their bytes arrive: what is here now arrived before the end
    assert.equal(raw.decodeError, undefined);
    assert.equal(raw.frames[0]?.type, FrameType.HELLO, 'the server spoke first, with its HELLO');
    const goaway = goawayOf(raw.frames);
    assert.equal(goaway.code, 'VERSION_MISMATCH', goaway.message);
    assert.match(goaway.message, MISMATCH);
    assert.equal(goaway.index, raw.frames.length - 1, 'nothing follows the GOAWAY');
    await within(raw.closed.promise, 3000, 'the socket closes');

    await until(() => logs.length > 0, 2000, 'the server logs the refused connection');
    const warning = oneWarning(logs);
    assert.ok(warning.includes(address), `the warning names the peer (${address}): ${warning}`);
    assert.match(warning, MISMATCH);
    assert.match(warning, /GW_ERR_VERSION_MISMATCH/);

    await until(() => server.sessions.size === 0, 2000, 'the refused session is forgotten');
    const client = await connectTo(t, server.url);
    assert.equal(await within(client.client(Sleepy).sleep(1), 2000, 'a call afterwards'), 'slept 1');
  });

  void test('connect() to a server that answers with a version-2-only HELLO rejects FAILED_PRECONDITION "ours 1..1, theirs 2..2"; that server receives our GOAWAY VERSION_MISMATCH with the reason', { timeout: 5000 }, async (t) => {
    const peers: RawPeer[] = [];
    const accepted = deferred<RawPeer>();
    const listener = await listenOn('tcp://127.0.0.1:0', (transport) => {
      const raw = new RawPeer(transport);
      peers.push(raw);
      raw.sendBytes(helloV2());
      accepted.resolve(raw);
    });
    t.after(async () => {
      for (const p of peers) p.transport.destroy();
      await within(listener.close(), CLEANUP_MS, 'raw server close');
    });

    const error = await rejectsWithStatus(within(connect(listener.url), 3000, 'connect()'), Status.FAILED_PRECONDITION, 'connect()');
    assert.match(error.message, MISMATCH);
    assert.ok(
      error.cause instanceof ProtocolError && error.cause.code === ProtocolErrorCode.VERSION_MISMATCH,
      `the cause is the ProtocolError: ${String(error.cause)}`,
    );

    const raw = await within(accepted.promise, 1000, 'the raw server accepted');
    await within(raw.ended.promise, 3000, 'the client ends the connection');
    assert.equal(raw.decodeError, undefined);
    assert.equal(raw.frames[0]?.type, FrameType.HELLO, 'the client sent its HELLO first');
    const goaway = goawayOf(raw.frames);
    assert.equal(goaway.code, 'VERSION_MISMATCH', goaway.message);
    assert.match(goaway.message, MISMATCH, "ours is the client's range, theirs the server's");
  });
});

void describe('lifecycle: peers that are not gridwire are closed, logged, and do not stop the server', () => {
  const firstByteNotHello = (bytes: Buffer): Buffer => {
    bytes[0] = 0xa7; // anything but HELLO (0x01) as the first frame type
    return bytes;
  };
  const cases: Array<{ name: string; bytes?: Uint8Array; options?: ListenOptions; goaway: string; log: RegExp }> = [
    { name: 'random bytes', bytes: firstByteNotHello(randomBytes(256)), goaway: 'PROTOCOL_ERROR', log: /GW_ERR_BAD_HANDSHAKE.*not a gridwire HELLO/ },
    { name: 'an HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), goaway: 'PROTOCOL_ERROR', log: /GW_ERR_BAD_HANDSHAKE.*not a gridwire HELLO/ },
    { name: 'nothing at all (handshakeTimeoutMs 200)', options: { handshakeTimeoutMs: 200 }, goaway: 'HANDSHAKE_TIMEOUT', log: /GW_ERR_HANDSHAKE_TIMEOUT.*200 ms/ },
  ];
  for (const c of cases) {
    void test(`${c.name}: GOAWAY ${c.goaway}, the connection closes, one warn line with the peer address and the reason; a client is served afterwards`, { timeout: 5000 }, async (t) => {
      const { server, logs } = await startServer(t, { services: [sleepyService()], ...c.options });
      const { raw, address } = await rawClient(t, server.url);
      if (c.bytes !== undefined) raw.sendBytes(c.bytes);
      await within(raw.closed.promise, 3000, 'the server closes the connection');
      const goaway = goawayOf(raw.frames);
      assert.equal(goaway.code, c.goaway, goaway.message);

      await until(() => logs.length > 0, 2000, 'the server logs the closed connection');
      const warning = oneWarning(logs);
      assert.ok(warning.includes(address), `the warning names the peer (${address}): ${warning}`);
      assert.match(warning, c.log);

      await until(() => server.sessions.size === 0, 2000, 'the failed session is forgotten');
      const client = await connectTo(t, server.url);
      assert.equal(await within(client.client(Sleepy).sleep(1), 2000, 'a call afterwards'), 'slept 1');
      assert.equal(logs.length, 1, 'a good client is not logged');
    });
  }
});

void describe('lifecycle: keepalive', () => {
  void test('a server process frozen with SIGSTOP is detected between interval + timeout and 2 x interval + timeout (200 / 300 ms): the call in flight fails UNAVAILABLE, closed names keepalive', { timeout: 15_000 }, async (t) => {
    const peer = spawnPeer(t);
    const url = await within(peer.url, 10_000, 'the child server listens');
    const session = await connectTo(t, url, { keepaliveIntervalMs: 200, keepaliveTimeoutMs: 300 });
    assert.equal(session.peer.nodeName, 'lifecycle-peer');
    const call = session.client(Sleepy).sleep(60_000);
    const callState = watch(call);
    // a ping behind the call: the child has read the call, and its ACK is the last byte we read before the freeze
    await within(session.ping(), 1000, 'a ping behind the call');
    const lastRead = performance.now();
    assert.ok(peer.child.pid !== undefined);
    process.kill(peer.child.pid, 'SIGSTOP');
    const stoppedAt = performance.now();

    const error = await rejectsWithStatus(within(call, 3000, 'the call in flight'), Status.UNAVAILABLE, 'the call in flight');
    const detectedAt = performance.now();
    assert.match(error.message, /keepalive/);
    const closedWith = await within(session.closed, 1000, 'the session closes');
    assert.ok(closedWith instanceof SessionError, `closed with ${String(closedWith)}`);
    assert.equal(closedWith.status, Status.UNAVAILABLE);
    assert.match(closedWith.message, /unresponsive/);
    assert.match(closedWith.message, /keepalive/);

    const sinceRead = detectedAt - lastRead;
    const sinceStop = detectedAt - stoppedAt;
    t.diagnostic(`declared dead ${sinceRead.toFixed(0)} ms after the last byte read, ${sinceStop.toFixed(0)} ms after SIGSTOP`);
    assert.ok(callState.settled);
    assert.ok(sinceRead >= 200 + 300 - 15, `declared dead ${sinceRead.toFixed(0)} ms after the last byte read (< interval + timeout)`);
    assert.ok(sinceStop < 2 * 200 + 300 + 800, `detected ${sinceStop.toFixed(0)} ms after SIGSTOP (bound 700 ms + slack)`);
  });

  void test('a healthy idle connection (interval 100 / timeout 100 on both sides) survives 1 s; a call then succeeds and rttMs was measured by the keepalive pings', { timeout: 5000 }, async (t) => {
    const keepalive = { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 100 };
    const accepted = deferred<RpcSession>();
    const { server, logs } = await startServer(t, { ...keepalive, services: [sleepyService()], onSession: (s) => accepted.resolve(s) });
    const client = await connectTo(t, server.url, { ...keepalive, services: [sleepyService()] });
    const serverSide = await within(accepted.promise, 1000, 'the server session');
    assert.equal(client.rttMs, undefined, 'no ping has been answered yet');
    const clientClosed = watch(client.closed);
    const serverClosed = watch(serverSide.closed);

    await sleep(1000);
    assert.equal(clientClosed.settled, false, `the client session closed: ${String(client.core.error)}`);
    assert.equal(serverClosed.settled, false, `the server session closed: ${String(serverSide.core.error)}`);
    assert.equal(await within(client.client(Sleepy).sleep(1), 1000, 'a call after the idle second'), 'slept 1');
    assert.equal(await within(serverSide.client(Sleepy).sleep(2), 1000, 'a call back after the idle second'), 'slept 2');
    for (const [side, session] of [['client', client], ['server', serverSide]] as const) {
      const rtt = session.rttMs;
      assert.ok(typeof rtt === 'number' && Number.isFinite(rtt) && rtt >= 0, `${side} rttMs: ${rtt}`);
    }
    assert.deepEqual(logs, []);
  });

  void test(
    'a healthy idle connection whose keepaliveTimeoutMs is above its keepaliveIntervalMs (100 / 250) survives 1 s',
    {
      // guards the fix: a tick that ran while a probe was pending used to hide the ACK, killing a healthy connection
      timeout: 5000,
    },
    async (t) => {
      const { server } = await startServer(t, { services: [sleepyService()] });
      const client = await connectTo(t, server.url, { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 250 });
      const closed = watch(client.closed);
      await sleep(1000);
      assert.equal(closed.settled, false, `the session closed on a healthy peer: ${String(client.core.error)}`);
      assert.equal(await within(client.client(Sleepy).sleep(1), 1000, 'a call after the idle second'), 'slept 1');
    },
  );
});

void describe('lifecycle: the peer ping budget', () => {
  void test('a raw peer that sends 100 PINGs at once gets 18 ACKs (a burst of 16, two forgiven strikes), then GOAWAY ENHANCE_YOUR_CALM "too many pings", and the connection closes', { timeout: 5000 }, async (t) => {
    const { server, logs } = await startServer(t, { services: [sleepyService()] });
    const { raw, address } = await rawClient(t, server.url);
    raw.sendBytes(helloFrame());
    await raw.waitFor((f) => f.type === FrameType.HELLO, 1000, "the server's HELLO");
    const pings = Array.from({ length: 100 }, (_, i) => encodeFrame({ type: FrameType.PING, flags: 0, streamId: 0, payload: encodePing(BigInt(i + 1)) }));
    raw.sendBytes(Buffer.concat(pings));
    await within(raw.closed.promise, 3000, 'the server closes the connection');

    const goaway = goawayOf(raw.frames);
    assert.equal(goaway.code, 'ENHANCE_YOUR_CALM', goaway.message);
    assert.match(goaway.message, /too many pings/);
    assert.equal(goaway.index, raw.frames.length - 1, 'nothing follows the GOAWAY');
    const acks = raw.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
    assert.equal(acks.length, 18, 'pings 1-16 are the burst, 17 and 18 strikes one and two, 19 the third strike');

    await until(() => logs.length > 0, 2000, 'the server logs the closed connection');
    const warning = oneWarning(logs);
    assert.ok(warning.includes(address), `the warning names the peer (${address}): ${warning}`);
    assert.match(warning, /GW_ERR_ENHANCE_YOUR_CALM.*too many pings/);
  });

  void test('Promise.all of 10 session.ping() from each side of a real connection stays within the budget: every ping answers and the connection stays up', { timeout: 5000 }, async (t) => {
    const accepted = deferred<RpcSession>();
    const { server, logs } = await startServer(t, { services: [sleepyService()], onSession: (s) => accepted.resolve(s) });
    const client = await connectTo(t, server.url);
    const serverSide = await within(accepted.promise, 1000, 'the server session');
    const rtts = await within(
      Promise.all([...Array.from({ length: 10 }, () => client.ping()), ...Array.from({ length: 10 }, () => serverSide.ping())]),
      2000,
      '10 pings each way',
    );
    assert.ok(rtts.every((rtt) => Number.isFinite(rtt) && rtt >= 0), `rtts ${rtts.join(', ')}`);
    await sleep(20);
    assert.ok(client.core.isOpen && serverSide.core.isOpen, `closed: ${String(client.core.error ?? serverSide.core.error)}`);
    assert.equal(await within(client.client(Sleepy).sleep(1), 1000, 'a call afterwards'), 'slept 1');
    assert.deepEqual(logs, []);
  });
});

void describe('lifecycle: the bulk progress watchdog', () => {
  for (const where of ['the call', "the caller's session"] as const) {
    void test(`a download whose handler sends one chunk and then stalls fails DEADLINE_EXCEEDED "no progress" after progressTimeoutMs (400 ms, on ${where}); the handler's signal aborts with DEADLINE_EXCEEDED`, { timeout: 5000 }, async (t) => {
      const hooks = transferHooks();
      // the server's own watchdog (200 ms) must stay quiet: a handler that does not produce is its own stall
      const { server } = await startServer(t, { services: [transferService(hooks)], progressTimeoutMs: 200 });
      const onCall = where === 'the call';
      const client = await connectTo(t, server.url, onCall ? {} : { progressTimeoutMs: 400 });
      const body = client.client(Transfer).stalledDownload(null, onCall ? { progressTimeoutMs: 400 } : {});
      const first = await within(body.next(), 2000, 'the first chunk');
      assert.equal(first.done, false);
      assert.equal(first.value?.length, 1024);
      const start = performance.now();

      const error = await rejectsWithStatus(within(body.next(), 2000, 'the stalled body'), Status.DEADLINE_EXCEEDED, 'the reader');
      const elapsed = performance.now() - start;
      assert.match(error.message, /no progress/);
      assert.match(error.message, /400 ms/, "the caller's watchdog fired (not the server's, 200 ms)");
      assert.ok(elapsed >= 380 && elapsed < 1000, `failed ${elapsed.toFixed(0)} ms after the last chunk (progressTimeoutMs 400)`);
      assertStatus(await within(hooks.aborted.promise, 1000, "the handler's signal"), Status.DEADLINE_EXCEEDED, "the handler's abort reason");

      // only that call failed: the connection carries the next transfer
      const chunks: Uint8Array[] = [];
      for await (const chunk of client.client(Transfer).quickDownload({ chunks: 2, bytes: 100 })) chunks.push(chunk);
      assert.equal(chunks.reduce((n, c) => n + c.length, 0), 200);
    });
  }

  void test('an upload whose handler stops reading the body fails DEADLINE_EXCEEDED "no progress" at the caller (progressTimeoutMs 400 on the call); the handler, whose stall is its own (200 ms watchdog), is aborted with DEADLINE_EXCEEDED', { timeout: 5000 }, async (t) => {
    const hooks = transferHooks();
    const { server } = await startServer(t, { services: [transferService(hooks)], progressTimeoutMs: 200 });
    const client = await connectTo(t, server.url);
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) yield new Uint8Array(64 * 1024).fill(++produced & 0xff);
    }
    const start = performance.now();
    const upload = client.client(Transfer).stalledUpload(null, endless(), { progressTimeoutMs: 400 });
    const error = await rejectsWithStatus(within(upload, 3000, 'the upload'), Status.DEADLINE_EXCEEDED, 'the upload');
    const elapsed = performance.now() - start;
    assert.match(error.message, /no progress/);
    assert.match(error.message, /400 ms/, "the caller's watchdog fired (not the handler's, 200 ms)");
    assert.ok(elapsed >= 400 && elapsed < 2000, `failed after ${elapsed.toFixed(0)} ms`);
    await within(hooks.readOne.promise, 100, 'the handler read a chunk');
    assert.ok(produced * 64 * 1024 > 1024 * 1024, `the source produced ${produced} chunks: more than the 1 MiB window, so it waited on credit`);
    assertStatus(await within(hooks.aborted.promise, 1000, "the handler's signal"), Status.DEADLINE_EXCEEDED, "the handler's abort reason");
  });

  void test('a download whose reader pauses 800 ms between chunks completes (progressTimeoutMs 200 on the call): a stall of our own never fires the watchdog', { timeout: 8000 }, async (t) => {
    const { server } = await startServer(t, { services: [transferService(transferHooks())] });
    // a 16 KiB window holds one chunk: while we pause, the handler waits on our credit and we hold a chunk unread
    const client = await connectTo(t, server.url, { bulkWindow: 16 * 1024 });
    const chunks: Uint8Array[] = [];
    const read = async (): Promise<void> => {
      for await (const chunk of client.client(Transfer).quickDownload({ chunks: 3, bytes: 16 * 1024 }, { progressTimeoutMs: 200 })) {
        chunks.push(chunk);
        if (chunks.length < 3) await sleep(800);
      }
    };
    await within(read(), 5000, 'the slow download');
    assert.deepEqual(
      chunks.map((c) => [c.length, c[0], c[c.length - 1]]),
      [
        [16 * 1024, 1, 1],
        [16 * 1024, 2, 2],
        [16 * 1024, 3, 3],
      ],
    );
  });
});

void describe('lifecycle: graceful shutdown', () => {
  void test('server.close({ graceMs: 2000 }) with 5 calls in flight: all 5 complete; a call racing the GOAWAY and one after it fail UNAVAILABLE retry-safe; closed resolves clean; no socket, server or timer is left', { timeout: 8000 }, async (t) => {
    const before = handleCounts();
    let started = 0;
    const { server, logs } = await startServer(t, { services: [sleepyService({ onStart: () => started++ })] });
    const client = await connectTo(t, server.url);
    const sleepy = client.client(Sleepy);
    const calls = Array.from({ length: 5 }, () => sleepy.sleep(300));
    const callsState = watch(Promise.all(calls));
    await until(() => started === 5, 2000, 'the 5 handlers start');

    const closing = server.close({ graceMs: 2000 });
    const racing = sleepy.sleep(1); // same tick as close(): its OPEN crosses the GOAWAY
    const raced = await rejectsWithStatus(within(racing, 2000, 'the racing call'), Status.UNAVAILABLE, 'the call racing the GOAWAY');
    assert.equal(raced.retrySafe, true, `no handler saw it, so it is retry-safe (${raced.message})`);
    const late = await rejectsWithStatus(sleepy.sleep(1), Status.UNAVAILABLE, 'a call after the GOAWAY');
    assert.equal(late.retrySafe, true, `retry-safe (${late.message})`);
    assert.equal(callsState.settled, false, 'the calls in flight are still running');

    assert.deepEqual(await within(Promise.all(calls), 3000, 'the calls in flight'), Array(5).fill('slept 300'));
    assert.equal(started, 5, 'neither refused call reached a handler');
    await within(closing, 3000, 'server.close()');
    assert.equal(await within(client.closed, 3000, 'the client session closes'), undefined, 'a clean close');
    assert.equal(server.sessions.size, 0);
    assert.deepEqual(logs, []);

    const within1s = performance.now() + 1000;
    const leftover = (): string[] => {
      const now = handleCounts();
      return HANDLE_KINDS.filter((k) => now[k] > before[k]).map((k) => `${k}: ${before[k]} before, ${now[k]} after`);
    };
    while (leftover().length > 0 && performance.now() < within1s) await sleep(10);
    assert.deepEqual(leftover(), [], 'handles left behind');
  });

  void test('a call still running when graceMs (100) expires fails UNAVAILABLE, not retry-safe (its handler ran), and its handler is aborted', { timeout: 5000 }, async (t) => {
    const aborted = deferred<unknown>();
    let started = 0;
    const { server } = await startServer(t, { services: [sleepyService({ onStart: () => started++, onAbort: (reason) => aborted.resolve(reason) })] });
    const client = await connectTo(t, server.url);
    const call = client.client(Sleepy).sleep(2000);
    await until(() => started === 1, 2000, 'the handler starts');

    const start = performance.now();
    const closing = server.close({ graceMs: 100 });
    const error = await rejectsWithStatus(within(call, 1500, 'the call in flight'), Status.UNAVAILABLE, 'the call in flight');
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 90 && elapsed < 1000, `failed ${elapsed.toFixed(0)} ms after close() (graceMs 100, handler 2000)`);
    assert.equal(error.retrySafe, false, `the handler ran: not retry-safe (${error.message})`);
    assertStatus(await within(aborted.promise, 1000, "the handler's signal"), Status.UNAVAILABLE, "the handler's abort reason");
    await within(closing, 3000, 'server.close()');
    await within(client.closed, 3000, 'the client session closes');
  });
});
