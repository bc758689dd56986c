// Many worker processes at once, for the mesh and connrss suites: spawn with a fork IPC channel, wait for their
// messages in order (../ipc-child.ts), and a guarantee that none outlives its run or the orchestrator (killed on exit,
// failure, signal). harness.ts runs exactly one server and one client; these suites need 32 nodes, or one server and
// several clients.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { IpcChild, killOnExit, REPO_ROOT } from '../ipc-child.js';
import type { FleetChildMsg, FleetParentMsg } from './messages.js';

const CONFIG = fileURLToPath(new URL('../tsconfig.fleet.json', import.meta.url));
/** Where tsconfig.fleet.json's outDir puts bench/fleet/. */
const COMPILED_DIR = fileURLToPath(new URL('../../node_modules/.cache/gridwire-bench/bench/fleet/', import.meta.url));

/** Milliseconds since the epoch with sub-ms resolution, comparable between processes on this machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

/** Builds bench/fleet/*.ts and src/ as plain JS (tsx's loader would cost each of 32 processes ~0.3 s and ~34 MiB). */
export function compileFleetWorkers(): string {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', CONFIG], { stdio: ['ignore', 2, 2] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tsc -p bench/tsconfig.fleet.json exited with ${r.status ?? r.signal}`);
  return COMPILED_DIR;
}

/** The soft limit on open files of this process (inherited by the children), or null when unknown. */
export function openFilesLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === 'unlimited') return Infinity;
    const n = Number(soft);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

// ---- one child ----

/** A fleet worker: plain JS, unpinned, with `nodeArgs` before the script. */
export class Child extends IpcChild<FleetChildMsg, FleetParentMsg> {
  constructor(label: string, script: string, args: readonly string[], nodeArgs: readonly string[] = []) {
    super(label, process.execPath, [...nodeArgs, script, ...args]);
  }
}

// ---- a group of children for one run ----

/**
 * The children of one run: `guard` races a step against the run's deadline and any child failing; `close` asks them
 * to stop, then kills whatever is left after `graceMs`. Use in try/finally so a failed run leaves nothing behind.
 */
export class Fleet {
  readonly children: Child[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly deadline: Promise<never>;

  constructor(timeoutMs: number) {
    this.deadline = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => reject(new Error(`run timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    this.deadline.catch(() => undefined);
  }

  spawn(label: string, script: string, args: readonly string[], nodeArgs: readonly string[] = []): Child {
    const child = new Child(label, script, args, nodeArgs);
    this.children.push(child);
    return child;
  }

  guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.deadline, ...this.children.map((c) => c.failed)]);
  }

  /** Sends `stop` to every child, waits up to graceMs for them to exit, then kills the rest. Never throws. */
  async close(graceMs = 2000): Promise<void> {
    clearTimeout(this.timer);
    for (const c of this.children) {
      c.expectExit();
      c.send({ t: 'stop' });
    }
    const all = Promise.all(this.children.map((c) => c.exited));
    let t: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (t = setTimeout(resolve, graceMs)))]);
    clearTimeout(t);
    for (const c of this.children) c.kill();
    await all;
  }
}

/** Spawns `count` processes of `argv` at once (no IPC) and resolves with the ms from the first spawn to the last exit. */
export async function timeSpawnExit(count: number, argv: readonly string[]): Promise<number> {
  const t0 = performance.now();
  const procs: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const proc = spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 2] });
    killOnExit(proc);
    procs.push(proc);
    exits.push(
      new Promise<void>((resolve, reject) => {
        proc.once('error', reject);
        proc.once('exit', (code, signal) => {
          if (code === 0) resolve();
          else reject(new Error(`node ${argv.join(' ')} exited with ${signal ?? code}`));
        });
      }),
    );
  }
  try {
    await Promise.all(exits);
  } catch (err) {
    for (const proc of procs) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    throw err;
  }
  return performance.now() - t0;
}
