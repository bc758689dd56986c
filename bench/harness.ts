// Process orchestration for one run: spawns a fresh server and client worker (pinned with taskset when possible),
// drives them over the fork IPC channel (start [-> armed] -> warmup -> mark -> window -> mark/report -> stop),
// enforces a hard deadline, and guarantees no worker outlives the run or the orchestrator (ipc-child.ts). Knows nothing
// of the systems' protocols, nor of what a worker measures.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { IpcChild } from './ipc-child.js';
import type { ChildMsg, ClientReport, ParentMsg, ServerReport, WorkerReport } from './protocol.js';
import type { SystemName } from './systems/index.js';

const UNARY_WORKER_PATH = fileURLToPath(new URL('./worker.ts', import.meta.url));
const EXIT_GRACE_MS = 3000;

export const SERVER_CPU = 0;
export const CLIENT_CPU = 1;

export interface RunSpec {
  system: SystemName;
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  pin: boolean;
  /** The whole run (spawn to exit) is killed after this long, whatever happens. */
  timeoutMs: number;
}

export interface RunReports {
  client: ClientReport;
  server: ServerReport;
}

/** One run of any worker script that speaks protocol.ts. */
export interface PairSpec {
  /** Names the workers in errors, e.g. 'gridwire bulk-upload'. */
  label: string;
  /** Absolute path of the worker script: TypeScript, run under tsx, unless `compiled`. */
  worker: string;
  /** The worker is plain JS: run it without tsx. */
  compiled?: boolean;
  serverArgs: string[];
  /** The client's arguments, given the address the server reported in its `ready`. */
  clientArgs(target: string): string[];
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
  client: WorkerReport;
  server: WorkerReport;
}

/** Extra node flags for every worker, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] (set by run.ts). */
let workerNodeArgs: readonly string[] = [];

export function setWorkerNodeArgs(args: readonly string[]): void {
  workerNodeArgs = args;
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

// ---- one worker process ----

/** A worker under tsx (unless compiled), pinned to `cpu` with taskset unless null. */
class WorkerProc extends IpcChild<ChildMsg, ParentMsg> {
  constructor(
    label: string,
    worker: string,
    args: string[],
    cpu: number | null,
    options: { nodeArgs?: readonly string[]; compiled?: boolean } = {},
  ) {
    const loader = options.compiled === true ? [] : ['--import', 'tsx'];
    const nodeArgs = [...workerNodeArgs, ...(options.nodeArgs ?? []), ...loader, worker, ...args];
    const [cmd, cmdArgs] =
      cpu === null ? [process.execPath, nodeArgs] : ['taskset', ['-c', String(cpu), process.execPath, ...nodeArgs]];
    super(label, cmd, cmdArgs);
  }

  /** Asks the worker to close and exit; kills it if it has not exited within EXIT_GRACE_MS. */
  async stop(): Promise<void> {
    this.expectExit();
    this.send({ t: 'stop' });
    const timer = setTimeout(() => this.kill(), EXIT_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one system at one concurrency of the unary echo in fresh processes and returns both sides' reports. */
export async function runOnce(spec: RunSpec): Promise<RunReports> {
  const { client, server } = await runPair({
    label: spec.system,
    worker: UNARY_WORKER_PATH,
    serverArgs: [spec.system, 'server'],
    clientArgs: (target) => [spec.system, 'client', target, String(spec.concurrency)],
    waitArmed: false,
    warmupMs: spec.warmupMs,
    windowMs: spec.windowMs,
    pin: spec.pin,
    timeoutMs: spec.timeoutMs,
  });
  return { client: asRole(client, 'client'), server: asRole(server, 'server') };
}

/** Runs one server and one client worker through the timeline above and returns both sides' reports. */
export async function runPair(spec: PairSpec): Promise<PairReports> {
  const workers: WorkerProc[] = [];
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`run timed out after ${spec.timeoutMs} ms`)), spec.timeoutMs);
  });
  deadline.catch(() => undefined);
  /** Races a step against the deadline and against any worker failing. */
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, deadline, ...workers.map((w) => w.failed)]);
  try {
    const { label, worker } = spec;
    const server = new WorkerProc(`${label} server`, worker, spec.serverArgs, spec.pin ? SERVER_CPU : null, spec);
    workers.push(server);
    const { target } = await guard(server.next('ready'));
    const client = new WorkerProc(`${label} client`, worker, spec.clientArgs(target), spec.pin ? CLIENT_CPU : null, spec);
    workers.push(client);
    await guard(client.next('ready'));

    client.send({ t: 'start' });
    if (spec.waitArmed) await guard(client.next('armed'));
    await guard(sleep(spec.warmupMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    await guard(sleep(spec.windowMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    const [c, s] = await guard(Promise.all([client.next('report'), server.next('report')]));
    await guard(client.stop());
    await guard(server.stop());
    return { client: c.report, server: s.report };
  } finally {
    clearTimeout(timer);
    for (const w of workers) w.kill();
  }
}

export function asRole<R extends WorkerReport['role']>(r: WorkerReport, role: R): Extract<WorkerReport, { role: R }> {
  if (r.role !== role) throw new Error(`expected a ${role} report, got ${r.role}`);
  return r as Extract<WorkerReport, { role: R }>;
}
