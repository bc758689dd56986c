// The contract between the scenario worker (worker.ts) and one system's side of one scenario: what a side is given
// (byte meters, the stop signal, a latency sink) and what it must provide (start, finish, close). A scenario knows
// its system's protocol; it knows nothing of IPC, marks, timing windows or statistics.

/** Size of every bulk chunk written or yielded, in bytes. */
export const CHUNK_BYTES = 64 * 1024;

export const MiB = 1024 * 1024;

/** A byte counter; the worker snapshots it at each mark. */
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
  /** Records one latency sample (ms); the worker keeps only those taken inside the window. */
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
  /** Opens ONE connection to `target`; everything the scenario does goes over it. */
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
