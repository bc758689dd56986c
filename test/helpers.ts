/**
 * Shared test helpers for the suites of every layer (test/<layer>/*.test.ts).
 *
 * - `testConnTypes` runs one test body over every transport (in-memory pair, TCP loopback, Unix socket) and in both
 *   directions, like yamux's testConnTypes: "forward" = the dialer calls the acceptor; "reversed" = the acceptor calls
 *   the dialer (which then serves the services). The body asks for its connection with `env.open({...})`, so it can
 *   define handlers that close over test state first.
 * - `RawPeer` speaks frames by hand; the set-ups that face one session with it are in fixtures/sessions.ts, servers,
 *   channels and meshes on real sockets in fixtures/connections.ts.
 * - Everything a helper creates (sessions, servers, socket files, raw sockets) is torn down in `t.after`, which
 *   node:test runs even when the test fails or times out; cleanup itself is bounded in time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openSync, readSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { test, type TestContext } from 'node:test';

import {
  connect,
  createMemoryPair,
  createSession,
  listen,
  RpcError,
  statusName,
  type RpcSession,
  type Server,
  type ServiceImpl,
  type SessionOptions,
} from '../src/index.js';
import type { MemoryTransport } from '../src/transport/memory.js';
import type { Transport } from '../src/transport/transport.js';
import { FrameType, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, type Status } from '../src/wire/constants.js';
import { FrameDecoder } from '../src/wire/decoder.js';
import { encodeFrame } from '../src/wire/frame.js';
import { encodeHello, type HelloSettings } from '../src/wire/hello.js';

// ---------------------------------------------------------------- small utilities

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves with `promise`'s value, or rejects if it has not settled within `ms` (the timer is always cleared). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let schedstat: number | null | undefined;
const schedstatBuffer = Buffer.alloc(256);

/**
 * The time (ms) the calling thread has spent so far ready to run but waiting for a CPU: Linux's
 * /proc/thread-self/schedstat, its second field (run_delay, ns), opened once and read at offset 0 (~2 µs). Where the
 * file is missing (not Linux, a kernel without schedstat) it is always 0. Call it from the main thread only: the file
 * is that of the thread that first opens it.
 */
export function cpuWaitMs(): number {
  if (schedstat === undefined) {
    try {
      schedstat = openSync('/proc/thread-self/schedstat', 'r');
    } catch {
      schedstat = null;
    }
  }
  if (schedstat === null) return 0;
  const length = readSync(schedstat, schedstatBuffer, 0, schedstatBuffer.length, 0);
  const runDelayNs = Number(schedstatBuffer.toString('latin1', 0, length).split(' ')[1]);
  return Number.isFinite(runDelayNs) ? runDelayNs / 1e6 : 0;
}

/**
 * Starts a stopwatch of this thread's own time; the function it returns gives the wall time since (`wallMs`) and
 * that less the time the thread waited meanwhile for a CPU (`ownMs`, `cpuWaitMs`).
 *
 * A timing bound on this process's work measures `ownMs`: on a loaded 2-core machine (`--test-concurrency=2`, a child
 * process of the test, whatever else a CI box runs) the scheduler takes this thread off its CPU for other processes'
 * time slices, several ms each and 50 ms and more in a row, which is no work of the code under test. What that code
 * does on this thread, its GC pauses and its waits for I/O still count in full. The clock is read before the wait at
 * the start and after it at the end, so a preemption between the two reads can only count as own time, never make
 * own time shorter than it was.
 */
export function stopwatch(): () => { wallMs: number; ownMs: number } {
  const started = performance.now();
  const waited = cpuWaitMs();
  return () => {
    const waitedSince = cpuWaitMs() - waited;
    const wallMs = performance.now() - started;
    return { wallMs, ownMs: Math.max(0, wallMs - waitedSince) };
  };
}

/** Waits until `predicate()` holds, polling every few ms; fails after `ms`. */
export async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > end) assert.fail(`${what}: condition not met within ${ms} ms`);
    await sleep(2);
  }
}

/** Asserts that `promise` rejects with an RpcError carrying `code`; returns the error for further checks. */
export async function rejectsWithStatus(promise: Promise<unknown>, code: Status, what = 'call'): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
    assert.equal(error.code, code, `${what}: expected ${statusName(code)}, got ${statusName(error.code)} (${error.message})`);
    return error;
  }
  assert.fail(`${what}: expected a rejection with ${statusName(code)}, but it resolved`);
}

/** Asserts that `value` is an RpcError carrying `code`. */
export function assertStatus(value: unknown, code: Status, what: string): asserts value is RpcError {
  assert.ok(value instanceof RpcError, `${what}: expected an RpcError, got ${String(value)}`);
  assert.equal(value.code, code, `${what}: expected ${statusName(code)}, got ${statusName(value.code)} (${value.message})`);
}

/** Runs `action` and returns the error it threw (fails if it did not throw). */
export async function errorOf(action: () => Promise<unknown>): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

/** Records whether a promise has settled, and keeps its rejection handled. */
export function watch<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** A unique Unix socket path under /tmp (short, to stay below the sun_path limit). */
export function socketPath(): string {
  return `/tmp/gw-test-${process.pid}-${randomBytes(6).toString('hex')}.sock`;
}

// ---------------------------------------------------------------- connections over every transport

export type TransportKind = 'memory' | 'tcp' | 'unix';
export const TRANSPORT_KINDS: readonly TransportKind[] = ['memory', 'tcp', 'unix'];

export interface ConnSetup {
  /** Services of the side that is called (the acceptor, or the dialer when reversed). */
  services?: readonly ServiceImpl[];
  /** Services of the calling side, so handlers can call it back. */
  callerServices?: readonly ServiceImpl[];
  /** Session options of the called side. */
  callee?: SessionOptions;
  /** Session options of the calling side. */
  caller?: SessionOptions;
}

export interface Conn {
  readonly kind: TransportKind;
  readonly reversed: boolean;
  /** The side the test calls from. */
  readonly caller: RpcSession;
  /** The side whose services are called. */
  readonly callee: RpcSession;
  readonly dialer: RpcSession;
  readonly acceptor: RpcSession;
  /** The listening server (tcp and unix). */
  readonly server: Server | undefined;
}

export interface ConnEnv {
  readonly kind: TransportKind;
  readonly reversed: boolean;
  /** Opens the connection for this transport and direction; torn down after the test. */
  open(setup?: ConnSetup): Promise<Conn>;
}

const CLEANUP_MS = 3_000;

/** Destroys sessions and closes servers, bounded in time; used from t.after. */
async function teardown(sessions: readonly RpcSession[], server: Server | undefined, path: string | undefined): Promise<void> {
  const all = new Set(sessions);
  if (server !== undefined) for (const s of server.sessions) all.add(s);
  for (const s of all) s.destroy();
  try {
    await within(Promise.all([...all].map((s) => s.closed)), CLEANUP_MS, 'sessions to close');
    if (server !== undefined) await within(server.close({ graceMs: 0 }), CLEANUP_MS, 'server to close');
  } finally {
    if (path !== undefined) await rm(path, { force: true });
  }
}

/**
 * Opens one connection of `kind`. Forward: the dialer calls the acceptor. Reversed: the acceptor calls the dialer.
 * The acceptor of a tcp/unix connection is the server's session (from `onSession`).
 */
export async function openConn(t: TestContext, kind: TransportKind, reversed: boolean, setup: ConnSetup = {}): Promise<Conn> {
  const dialerServices = reversed ? setup.services : setup.callerServices;
  const acceptorServices = reversed ? setup.callerServices : setup.services;
  const dialerOptions = (reversed ? setup.callee : setup.caller) ?? {};
  const acceptorOptions = (reversed ? setup.caller : setup.callee) ?? {};
  const sessions: RpcSession[] = [];
  let server: Server | undefined;
  let path: string | undefined;
  t.after(() => teardown(sessions, server, path));

  let dialer: RpcSession;
  let acceptor: RpcSession;
  if (kind === 'memory') {
    const [a, b] = createMemoryPair();
    dialer = createSession(a, 'dialer', { ...dialerOptions, services: dialerServices });
    acceptor = createSession(b, 'acceptor', { ...acceptorOptions, services: acceptorServices });
    sessions.push(dialer, acceptor);
    await within(Promise.all([dialer.ready, acceptor.ready]), CLEANUP_MS, 'memory handshake');
  } else {
    const accepted = deferred<RpcSession>();
    if (kind === 'unix') path = socketPath();
    const url = kind === 'tcp' ? 'tcp://127.0.0.1:0' : `unix://${path}`;
    server = await listen(url, { ...acceptorOptions, services: acceptorServices, onSession: (s) => accepted.resolve(s) });
    dialer = await connect(server.url, { ...dialerOptions, services: dialerServices });
    sessions.push(dialer);
    acceptor = await within(accepted.promise, CLEANUP_MS, 'server session');
    sessions.push(acceptor);
  }
  return {
    kind,
    reversed,
    dialer,
    acceptor,
    server,
    caller: reversed ? acceptor : dialer,
    callee: reversed ? dialer : acceptor,
  };
}

export interface ConnTestOptions {
  /** Per test (per transport and direction), in ms. Default 10 000. */
  timeout?: number;
  kinds?: readonly TransportKind[];
  /** Default: both directions. */
  directions?: ReadonlyArray<'forward' | 'reversed'>;
}

/** Registers `name [kind, direction]` for every transport and direction. Call inside a describe or at top level. */
export function testConnTypes(name: string, body: (env: ConnEnv, t: TestContext) => Promise<void>, options: ConnTestOptions = {}): void {
  const timeout = options.timeout ?? 10_000;
  for (const kind of options.kinds ?? TRANSPORT_KINDS) {
    for (const direction of options.directions ?? (['forward', 'reversed'] as const)) {
      const reversed = direction === 'reversed';
      void test(`${name} [${kind}, ${direction}]`, { timeout }, async (t) => {
        await body({ kind, reversed, open: (setup) => openConn(t, kind, reversed, setup) }, t);
      });
    }
  }
}

// ---------------------------------------------------------------- raw peers (speaking frames by hand)

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

/** Default HELLO settings a raw peer announces. */
export const RAW_HELLO_SETTINGS: HelloSettings = {
  maxFrameBytes: 64 * 1024,
  initialStreamWindow: 256 * 1024,
  initialMessageWindow: 1024,
  connectionWindow: 16 * 1024 * 1024,
  maxConcurrentStreams: 100,
  maxMessageBytes: 4 * 1024 * 1024,
  features: 0,
  nodeName: 'raw',
  label: '',
};

export function helloFrame(settings: Partial<HelloSettings> = {}): Uint8Array {
  return encodeFrame({
    type: FrameType.HELLO,
    flags: 0,
    streamId: 0,
    payload: encodeHello({
      versionMin: PROTOCOL_VERSION_MIN,
      versionMax: PROTOCOL_VERSION_MAX,
      settings: { ...RAW_HELLO_SETTINGS, ...settings },
    }),
  });
}

/**
 * One end of a memory pair driven by hand: `send` writes frames, `frames` records (copies of) what the other side
 * sent, `ended` resolves on EOF or close.
 */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  readonly ended = deferred<void>();
  readonly closed = deferred<Error | undefined>();
  decodeError: Error | undefined;
  private readonly decoder = new FrameDecoder(
    (type, flags, streamId, payload) => {
      this.frames.push({ type, flags, streamId, payload: payload.slice() });
    },
    { maxFrameBytes: 16 * 1024 * 1024 },
  );

  constructor(readonly transport: Transport) {
    transport.attach({
      onData: (chunk) => {
        try {
          this.decoder.push(Uint8Array.from(chunk));
        } catch (error) {
          this.decodeError = error as Error;
        }
      },
      onEnd: () => {
        this.ended.resolve();
        // answer EOF with EOF, as a socket without allowHalfOpen would
        transport.end();
      },
      onDrain: () => undefined,
      onClose: (error) => {
        this.ended.resolve();
        this.closed.resolve(error);
      },
    });
  }

  send(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): void {
    this.transport.write([encodeFrame({ type, flags, streamId, payload })]);
  }

  sendBytes(bytes: Uint8Array): void {
    this.transport.write([bytes]);
  }

  /** Waits for the first frame matching `match` that arrived (or arrives) after index `from`. */
  async waitFor(match: (f: RawFrame) => boolean, ms: number, what: string, from = 0): Promise<RawFrame> {
    let found: RawFrame | undefined;
    await until(() => (found = this.frames.slice(from).find(match)) !== undefined, ms, `raw peer waiting for ${what}`);
    return found!;
  }

  ofType(type: number): RawFrame[] {
    return this.frames.filter((f) => f.type === type);
  }
}

/** Counts `write` calls on a memory transport (wraps it in place). */
export function countWrites(transport: MemoryTransport): { readonly writes: number; reset(): void } {
  let writes = 0;
  const original = transport.write.bind(transport);
  transport.write = (chunks) => {
    writes++;
    return original(chunks);
  };
  return {
    get writes() {
      return writes;
    },
    reset() {
      writes = 0;
    },
  };
}

/** Registers a raw socket so it is destroyed after the test. */
export function destroyAfter(t: TestContext, socket: Socket): Socket {
  t.after(() => {
    socket.destroy();
  });
  return socket;
}

// ---------------------------------------------------------------- timer leak detection

export interface TimerTracker {
  /** Timers created while tracking that have neither fired nor been cleared, with where they were created. */
  live(): string[];
  stop(): void;
}

/**
 * Records every setTimeout made while active (process.getActiveResourcesInfo() does not list unref'd timers, and a
 * leaked unref'd timer still fires later), so a test can assert that everything the session started was stopped.
 */
export function trackTimers(): TimerTracker {
  const live = new Map<NodeJS.Timeout, string>();
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const tracked = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const where = new Error().stack?.split('\n')[2]?.trim() ?? '?';
    const timer: NodeJS.Timeout = realSet(
      (...a: unknown[]) => {
        live.delete(timer);
        callback(...a);
      },
      ms,
      ...args,
    );
    live.set(timer, `${ms ?? 0} ms timer ${where}`);
    return timer;
  }) as typeof setTimeout;
  const clear = ((timer: NodeJS.Timeout | string | number | undefined) => {
    if (timer !== undefined && typeof timer === 'object') live.delete(timer);
    realClear(timer);
  }) as typeof clearTimeout;
  globalThis.setTimeout = tracked;
  globalThis.clearTimeout = clear;
  return {
    live: () => [...live.values()],
    stop() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}
