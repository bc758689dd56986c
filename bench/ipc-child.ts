// The orchestrator's side of a worker process (child.ts is the worker's side), for harness.ts and fleet/procs.ts:
// spawn with a fork IPC channel, take its messages in order, turn an error report or an early exit into a rejection,
// and the guarantee that no child outlives the orchestrator (killed on exit, failure or signal).
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---- cleanup: every live child is killed when the orchestrator exits, fails or is interrupted ----

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killAll();
    console.error(`\nbench: ${sig}, workers killed`);
    process.exit(128 + (os.constants.signals[sig] ?? 0));
  });
}

/** Kills `proc` if the orchestrator exits, fails or is interrupted while it runs. */
export function killOnExit(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

// ---- one child ----

type ErrorMsg = { t: 'error'; message: string };

/** A child that sends messages of type `In` (an `error` one among them) and takes messages of type `Out`. */
export class IpcChild<In extends { t: string }, Out extends { t: string }> {
  readonly proc: ChildProcess;
  /** Rejects when the child reports an error, or exits before it was told to stop. */
  readonly failed: Promise<never>;
  readonly exited: Promise<void>;
  private stopping = false;
  private readonly queues = new Map<string, In[]>();
  private readonly waiters = new Map<string, ((m: In) => void)[]>();

  /** Spawns `command args` in the repository root; the child's stdout goes to our stderr (our stdout is for results). */
  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
  ) {
    this.proc = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 2, 2, 'ipc'] });
    killOnExit(this.proc);
    let rejectFailed: (e: Error) => void = () => undefined;
    this.failed = new Promise<never>((_, reject) => (rejectFailed = reject));
    this.failed.catch(() => undefined);
    this.exited = new Promise<void>((resolve) => {
      this.proc.once('exit', (code, signal) => {
        if (!this.stopping) rejectFailed(new Error(`${label} exited early (${signal ?? `code ${code}`})`));
        resolve();
      });
    });
    this.proc.once('error', (err) => rejectFailed(new Error(`${label}: ${err.message}`)));
    this.proc.on('message', (m: In) => {
      if (m.t === 'error') {
        this.stopping = true;
        rejectFailed(new Error(`${label} failed: ${(m as unknown as ErrorMsg).message}`));
        return;
      }
      const waiter = this.waiters.get(m.t)?.shift();
      if (waiter) waiter(m);
      else this.queues.set(m.t, [...(this.queues.get(m.t) ?? []), m]);
    });
  }

  /** The next message of type `t` not yet taken (messages of one type are taken in the order they came). */
  next<T extends In['t']>(t: T): Promise<Extract<In, { t: T }>> {
    const queued = this.queues.get(t)?.shift();
    if (queued) return Promise.resolve(queued as Extract<In, { t: T }>);
    return new Promise((resolve) => {
      const list = this.waiters.get(t) ?? [];
      list.push(resolve as (m: In) => void);
      this.waiters.set(t, list);
    });
  }

  send(msg: Out): void {
    if (this.proc.connected) this.proc.send(msg);
  }

  /** From now on an exit is expected (not a failure). */
  expectExit(): void {
    this.stopping = true;
  }

  kill(): void {
    this.stopping = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}
