// The contract between the measured side of a pair run (../roles/side.ts) and one system's side of one scenario:
// what a side is given (byte meters, the stop signal, a latency sink) and what it must provide (start, finish,
// close); and the echo scenario built on any system's 32-byte echo. A scenario knows its system's protocol; it knows
// nothing of IPC, marks, timing windows or statistics.
import { performance } from 'node:perf_hooks';

/** Size of the echoed payload, in bytes. */
export const ECHO_BYTES = 32;
/**
 * What the unary suite echoes (--payload). `bytes`: ECHO_BYTES bytes (gridwire: a Uint8Array through a method with
 * the raw codec, no codec work). `object`: `{ data: Uint8Array(ECHO_BYTES) }` through gridwire's default codec
 * (msgpack); the systems without a codec echo as many bytes as that encoding takes (ECHO_OBJECT_BYTES), so every
 * row carries the same message size.
 */
export const ECHO_PAYLOADS = ['bytes', 'object'] as const;
export type EchoPayload = (typeof ECHO_PAYLOADS)[number];

/**
 * How gridwire's bulk-upload and bulk-download produce the body and read it (the other systems and scenarios ignore
 * it): an async generator read with `for await` (the default); a Node Readable like an fs stream; a web
 * ReadableStream; one big Uint8Array per call, calls back to back; a Node Readable read through stream.pipeline()
 * into a Node Writable (gridwire-bodies.ts). Named here, not in index.ts, so gridwire.ts and gridwire-bodies.ts
 * import nothing from the registry that loads them.
 */
export const BULK_BODIES = ['generator', 'readable', 'web-stream', 'bytes', 'pipeline'] as const;
export type BulkBody = (typeof BULK_BODIES)[number];
/** The msgpack encoding of `{ data: Uint8Array(32) }` as gridwire writes it: map16 (3) + fixstr "data" (5) + bin 8 (2 + 32). */
export const ECHO_OBJECT_BYTES = 42;

export function isEchoPayload(s: string): s is EchoPayload {
  return (ECHO_PAYLOADS as readonly string[]).includes(s);
}

/** The bytes a system without a codec echoes for `payload`. */
export function echoBytesOf(payload: EchoPayload): number {
  return payload === 'object' ? ECHO_OBJECT_BYTES : ECHO_BYTES;
}
/** Size of every bulk chunk written or yielded, in bytes. */
export const CHUNK_BYTES = 64 * 1024;
export const MiB = 1024 * 1024;

/** A byte counter; the side snapshots it at each mark. */
export class ByteMeter {
  total = 0;

  add(n: number): void {
    this.total += n;
  }
}

export interface SideContext {
  /** Payload bytes this side received from its peer. */
  readonly received: ByteMeter;
  /** Payload bytes this side handed to its transport (or to the library, for a generator it feeds). */
  readonly sent: ByteMeter;
  /** Aborts at the second mark: a sending side stops producing then and ends its transfer cleanly. */
  readonly stopSending: AbortSignal;
  /** Records one latency sample (ms); only those taken inside the window are kept. */
  recordLatency(ms: number): void;
  /** Scenario-specific figures to report, numbers only. */
  readonly facts: Record<string, number>;
  /** Fails the worker (and the run): for errors of work started in the background. */
  fail(err: unknown): never;
}

export interface ScenarioServer {
  /** Address the client dials. */
  readonly target: string;
  /** Called after the second mark; resolves once this side's part has ended cleanly and its meters are final. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

export interface ScenarioClient {
  /** Starts the load (on `start`); resolves once set-up is done (`armed`). Errors later go to ctx.fail. */
  start(): Promise<void>;
  /** Called after the second mark; resolves once this side's part has ended cleanly, after checking what it can. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

export interface Scenario {
  startServer(ctx: SideContext): Promise<ScenarioServer>;
  /** Opens ONE connection to `target` (or one Mesh node peering with it); everything the scenario does goes over it. */
  connectClient(target: string, ctx: SideContext): Promise<ScenarioClient>;
}

/** A promise with its resolve and reject in hand, for "this side's work has ended". */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Throws when the two sides of a transfer disagree on its size: a short or long transfer is a failed run. */
export function checkCount(what: string, expected: number, got: number): void {
  if (expected !== got) throw new Error(`${what}: byte count mismatch, sent ${expected}, counted ${got}`);
}

// ---- the echo scenario: any system's echo of `bytes` bytes, `concurrency` calls outstanding on one connection ----

/** Called once per completed call with the start time that was passed to `call`. */
export type ReplyFn = (err: Error | null, t0: number) => void;

export interface EchoServer {
  /** Address the client dials, e.g. '127.0.0.1:41234' or 'tcp://127.0.0.1:41234'. */
  target: string;
  close(): Promise<void>;
}

export interface EchoClient {
  /** Issue one echo call; the system must eventually call its ReplyFn with this t0 (success or error). */
  call(t0: number): void;
  close(): Promise<void>;
}

/** What a system implements to take part in the unary suite: echo messages of `bytes` bytes (its server echoes any size). */
export interface EchoSystem {
  startServer(): Promise<EchoServer>;
  /** Open ONE connection to `target`; all calls of this client share it and send `bytes` bytes each. */
  connectClient(target: string, onReply: ReplyFn, bytes: number): Promise<EchoClient>;
}

/**
 * Calls every echo client completes before it reports `armed` (the unary suite waits for that before its warmup
 * window): V8 optimises a function after it has run a number of times, not after a time, so a 1 s warmup left the
 * c=1 rows of a system with more code (gridwire's msgpack path most of all) compiling through the measured window,
 * its CPU per call counting the compiler's threads. Bounded by ECHO_WARMUP_MAX_MS for the slow systems (grpc-js).
 */
export const ECHO_WARMUP_CALLS = 20_000;
export const ECHO_WARMUP_MAX_MS = 4_000;

/**
 * The client keeps `concurrency` calls outstanding from `start` until the second mark (each reply issues the next
 * call), timing every call; the window keeps only those inside it. `start` resolves (armed) once ECHO_WARMUP_CALLS
 * have completed or ECHO_WARMUP_MAX_MS have passed. The server just echoes.
 */
export function echoScenario(system: EchoSystem, concurrency: number, bytes = ECHO_BYTES): Scenario {
  return {
    async startServer() {
      const server = await system.startServer();
      return { target: server.target, finish: () => Promise.resolve(), close: () => server.close() };
    },
    async connectClient(target, ctx) {
      let completed = 0;
      const warm = deferred();
      const client: EchoClient = await system.connectClient(target, function onReply(err, t0) {
        if (err !== null) ctx.fail(err);
        ctx.recordLatency(performance.now() - t0);
        if (++completed === ECHO_WARMUP_CALLS) warm.resolve();
        if (!ctx.stopSending.aborted) client.call(performance.now());
      }, bytes);
      return {
        start() {
          for (let i = 0; i < concurrency; i++) client.call(performance.now());
          const cap = setTimeout(warm.resolve, ECHO_WARMUP_MAX_MS);
          return warm.promise.finally(() => clearTimeout(cap));
        },
        finish: () => Promise.resolve(),
        close: () => client.close(),
      };
    },
  };
}
