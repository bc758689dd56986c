// The orchestrator's side of the worker processes (worker.ts is the other side): how workers are launched (under tsx,
// or compiled to plain JS) and which gridwire library each gridwire system imports; spawning one with a fork IPC
// channel and taking its messages in order; pinning a pair's server and client to two CPUs; one measured pair run
// through its timeline; a fleet of many workers for one run; and the guarantee that no worker outlives its run or the
// orchestrator (killed on exit, failure or signal). Knows nothing of the systems' protocols, nor of what is measured.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChildMsg, ParentMsg, SideReport, SideSpec, WorkerSpec } from './messages.js';
import { isGridwire, type GridwireSystem, type SystemName } from './systems/index.js';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXIT_GRACE_MS = 3000;
export const SERVER_CPU = 0;
export const CLIENT_CPU = 1;

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

function killOnExit(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

// ---- launching: tsx or compiled, and where each gridwire system's library is ----

export interface Launch {
  /** The worker script, and the node flags that let node run it. */
  script: string;
  loader: readonly string[];
  /** The module URL each gridwire system imports; gridwire@base only with --against. */
  libraries: Partial<Record<GridwireSystem, string>>;
}

/** The checkout's library source, checked to exist. */
function librarySource(checkout: string): string {
  const index = path.join(checkout, 'src', 'index.ts');
  if (!existsSync(index)) throw new Error(`${index} does not exist: --against takes the root of a gridwire checkout`);
  return index;
}

/**
 * How the pair suites (unary, bulk, latency, ws) launch their workers: compiled to plain JS unless --tsx. A library run
 * under tsx is not what an application runs, and it measures differently: since node:tls joined the process (issue
 * 11), bulk under tsx was ~0.5x of the same code compiled, with the receiver's user CPU per MiB two to three times as
 * high, while compiled it was level with the commit before (docs/BENCHMARKS.md, "Bulk under tsx").
 */
let pairsUnderTsx = false;

export function setPairsUnderTsx(underTsx: boolean): void {
  pairsUnderTsx = underTsx;
}

export function pairLaunch(against: string | null): Launch {
  return pairsUnderTsx ? tsxLaunch(against) : compiledLaunch(against);
}

/** Workers under tsx, importing each checkout's src/index.ts (the pair suites with --tsx). */
export function tsxLaunch(against: string | null): Launch {
  const libraries: Launch['libraries'] = { gridwire: pathToFileURL(librarySource(REPO_ROOT)).href };
  if (against !== null) libraries['gridwire@base'] = pathToFileURL(librarySource(against)).href;
  return { script: fileURLToPath(new URL('./worker.ts', import.meta.url)), loader: ['--import', 'tsx'], libraries };
}

/**
 * Where compiled workers and libraries go: under node_modules, so their bare imports resolve from it; one folder per
 * checkout, because worktrees may share one node_modules.
 */
const CACHE_DIR = path.join(
  REPO_ROOT, 'node_modules', '.cache', 'gridwire-bench', createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12),
);
const compiled = new Map<string, Launch>();

/**
 * Workers and libraries as plain JS, compiled by tsc into CACHE_DIR (a few seconds, once per orchestrator run).
 * Memory must be measured as an application runs, and a process under tsx carries tsx's module-loader thread: on
 * Node 20 about 34 MiB more RSS (a bare `node` 39 MiB, `node --import tsx` 73 MiB), which would swamp the figures;
 * and 32 mesh nodes under tsx would each spend ~0.3 s starting. The other checkout (--against) is compiled with its
 * own tsconfig.json.
 */
export function compiledLaunch(against: string | null): Launch {
  const key = against ?? '';
  const known = compiled.get(key);
  if (known !== undefined) return known;
  compile('this', REPO_ROOT, [fileURLToPath(new URL('./worker.ts', import.meta.url)), librarySource(REPO_ROOT)], CACHE_DIR);
  // files the compiled systems read beside their own module (systems/grpc.ts loads ../grpc.proto)
  copyFileSync(fileURLToPath(new URL('./grpc.proto', import.meta.url)), path.join(CACHE_DIR, 'bench', 'grpc.proto'));
  const url = (file: string): string => pathToFileURL(file).href;
  const launch: Launch = {
    script: path.join(CACHE_DIR, 'bench', 'worker.js'),
    loader: [],
    libraries: { gridwire: url(path.join(CACHE_DIR, 'src', 'index.js')) },
  };
  if (against !== null) {
    const out = path.join(CACHE_DIR, 'base');
    compile('base', against, [librarySource(against)], out);
    launch.libraries['gridwire@base'] = url(path.join(out, 'src', 'index.js'));
  }
  compiled.set(key, launch);
  return launch;
}

/** Runs tsc on `files` of `checkout` with that checkout's tsconfig.json, emitting plain JS into `outDir`. */
function compile(name: string, checkout: string, files: string[], outDir: string): void {
  mkdirSync(CACHE_DIR, { recursive: true });
  const config = path.join(CACHE_DIR, `tsconfig.${name}.json`);
  const compilerOptions = { noEmit: false, declaration: false, sourceMap: false, rootDir: checkout, outDir };
  writeFileSync(config, JSON.stringify({ extends: path.join(checkout, 'tsconfig.json'), compilerOptions, files, include: [] }));
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', config], { stdio: ['ignore', 2, 2] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tsc -p ${config} exited with ${r.status ?? r.signal}`);
}

/** Extra node flags for every worker, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] (set by run.ts). */
let workerNodeArgs: readonly string[] = [];

export function setWorkerNodeArgs(args: readonly string[]): void {
  workerNodeArgs = args;
}

// ---- one worker ----

/** A worker process running `spec`, pinned to `cpu` with taskset unless null; its messages are taken in order. */
export class Worker {
  readonly proc: ChildProcess;
  /** Rejects when the worker reports an error, or exits before it was told to stop. */
  readonly failed: Promise<never>;
  readonly exited: Promise<void>;
  private stopping = false;
  private readonly queues = new Map<string, ChildMsg[]>();
  private readonly waiters = new Map<string, ((m: ChildMsg) => void)[]>();

  /** Spawns in the repository root; the worker's stdout goes to our stderr (our stdout is for results). */
  constructor(
    readonly label: string,
    launch: Launch,
    spec: WorkerSpec,
    options: { cpu?: number | null; nodeArgs?: readonly string[] } = {},
  ) {
    const nodeArgs = [...workerNodeArgs, ...(options.nodeArgs ?? []), ...launch.loader, launch.script, JSON.stringify(spec)];
    const cpu = options.cpu ?? null;
    const [cmd, args] = cpu === null ? [process.execPath, nodeArgs] : ['taskset', ['-c', String(cpu), process.execPath, ...nodeArgs]];
    this.proc = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 2, 2, 'ipc'] });
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
    this.proc.on('message', (m: ChildMsg) => {
      if (m.t === 'error') {
        this.stopping = true;
        rejectFailed(new Error(`${label} failed: ${m.message}`));
        return;
      }
      const waiter = this.waiters.get(m.t)?.shift();
      if (waiter) waiter(m);
      else this.queues.set(m.t, [...(this.queues.get(m.t) ?? []), m]);
    });
  }

  /** The next message of type `t` not yet taken (messages of one type are taken in the order they came). */
  next<T extends ChildMsg['t']>(t: T): Promise<Extract<ChildMsg, { t: T }>> {
    const queued = this.queues.get(t)?.shift();
    if (queued) return Promise.resolve(queued as Extract<ChildMsg, { t: T }>);
    return new Promise((resolve) => {
      const list = this.waiters.get(t) ?? [];
      list.push(resolve as (m: ChildMsg) => void);
      this.waiters.set(t, list);
    });
  }

  send(msg: ParentMsg): void {
    if (this.proc.connected) this.proc.send(msg);
  }

  /** From now on an exit is expected (not a failure). */
  expectExit(): void {
    this.stopping = true;
  }

  /** Asks the worker to close and exit; kills it if it has not exited within `graceMs`. */
  async stop(graceMs = EXIT_GRACE_MS): Promise<void> {
    this.expectExit();
    this.send({ t: 'stop' });
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.stopping = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

// ---- pinning ----

/** Whether server and client can be pinned to CPUs 0 and 1, and if not, why. */
export function detectPinning(): { pin: boolean; note: string } {
  const cpus = os.availableParallelism();
  if (cpus < 2) return { pin: false, note: `only ${cpus} CPU available: running unpinned` };
  for (const cpu of [SERVER_CPU, CLIENT_CPU]) {
    const r = spawnSync('taskset', ['-c', String(cpu), 'true'], { stdio: 'ignore' });
    if (r.error) return { pin: false, note: `taskset not usable (${r.error.message}): running unpinned` };
    if (r.status !== 0) return { pin: false, note: `taskset cannot pin to CPU ${cpu}: running unpinned` };
  }
  return { pin: true, note: `pinned: server on CPU ${SERVER_CPU}, client on CPU ${CLIENT_CPU} (taskset)` };
}

// ---- a group of workers for one run ----

/**
 * The workers of one run: `guard` races a step against the run's deadline and any worker failing; `close` asks them
 * to stop, then kills whatever is left after `graceMs`. Use in try/finally so a failed run leaves nothing behind.
 */
export class Fleet {
  readonly workers: Worker[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly deadline: Promise<never>;

  constructor(
    timeoutMs: number,
    private readonly launch: Launch,
  ) {
    this.deadline = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => reject(new Error(`run timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    this.deadline.catch(() => undefined);
  }

  spawn(label: string, spec: WorkerSpec, options: { cpu?: number | null; nodeArgs?: readonly string[] } = {}): Worker {
    const worker = new Worker(label, this.launch, spec, options);
    this.workers.push(worker);
    return worker;
  }

  guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.deadline, ...this.workers.map((w) => w.failed)]);
  }

  /** Sends `stop` to every worker, waits up to graceMs for them to exit, then kills the rest. Never throws. */
  async close(graceMs = 2000): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all(this.workers.map((w) => w.stop(graceMs)));
  }
}

// ---- one measured pair run ----

export interface PairSpec {
  /** Names the workers in errors, e.g. 'gridwire bulk-upload'. */
  label: string;
  launch: Launch;
  /** What both sides run; each gets its role, the client the server's address, a gridwire system its library. */
  side: Omit<SideSpec, 'role' | 'target' | 'library'>;
  /** Wait for the client's `armed` after `start` before the warmup begins (for set-up of unknown length). */
  waitArmed: boolean;
  /** Node flags for both workers of this run, e.g. ['--expose-gc']. */
  nodeArgs?: string[];
  warmupMs: number;
  windowMs: number;
  pin: boolean;
  /** The whole run (spawn to exit) is killed after this long, whatever happens. */
  timeoutMs: number;
}

export interface PairReports {
  client: SideReport;
  server: SideReport;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a fresh server worker, then a fresh client worker dialing it, through the timeline start [-> armed] -> warmup
 * -> mark -> window -> mark -> reports -> stop, and returns both sides' reports.
 */
export async function runPair(spec: PairSpec): Promise<PairReports> {
  const fleet = new Fleet(spec.timeoutMs, spec.launch);
  try {
    const side = { ...spec.side, library: libraryOf(spec.launch, spec.side.system), target: '' };
    const nodeArgs = spec.nodeArgs ?? [];
    const server = fleet.spawn(`${spec.label} server`, { ...side, role: 'server' }, { cpu: spec.pin ? SERVER_CPU : null, nodeArgs });
    const { target } = await fleet.guard(server.next('ready'));
    const client = fleet.spawn(`${spec.label} client`, { ...side, role: 'client', target }, { cpu: spec.pin ? CLIENT_CPU : null, nodeArgs });
    await fleet.guard(client.next('ready'));

    client.send({ t: 'start' });
    if (spec.waitArmed) await fleet.guard(client.next('armed'));
    await fleet.guard(sleep(spec.warmupMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    await fleet.guard(sleep(spec.windowMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    const [c, s] = await fleet.guard(Promise.all([client.next('report'), server.next('report')]));
    await fleet.guard(client.stop());
    await fleet.guard(server.stop());
    return { client: c.report, server: s.report };
  } finally {
    await fleet.close(0);
  }
}

/** The module URL a worker of `system` imports: its gridwire library, or '' for the other systems. */
export function libraryOf(launch: Launch, system: SystemName): string {
  if (!isGridwire(system)) return '';
  const url = launch.libraries[system];
  if (url === undefined) throw new Error(`${system} has no library: it needs --against <checkout>`);
  return url;
}

// ---- many bare processes at once ----

/** Spawns `count` processes of `node argv` at once (no IPC) and resolves with the ms from the first spawn to the last exit. */
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
