// Process orchestration for one run: spawns a fresh server and client worker (pinned with taskset when possible),
// drives them over the fork IPC channel (start -> warmup -> mark -> window -> mark/report -> stop), enforces a hard
// deadline, and guarantees no worker outlives the run or the orchestrator. Knows nothing of the systems' protocols.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ChildMsg, ClientReport, ParentMsg, ServerReport, WorkerReport } from './protocol.js';
import type { SystemName } from './systems/index.js';

const WORKER_PATH = fileURLToPath(new URL('./worker.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
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

// ---- cleanup: every live worker is killed when the orchestrator exits, fails or is interrupted ----

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

class WorkerProc {
  readonly child: ChildProcess;
  /** Rejects when the worker reports an error or exits before it was told to stop. */
  readonly failed: Promise<never>;
  readonly exited: Promise<void>;
  private stopping = false;
  private readonly received = new Map<ChildMsg['t'], ChildMsg>();
  private readonly waiters = new Map<ChildMsg['t'], (m: ChildMsg) => void>();

  constructor(
    readonly label: string,
    args: string[],
    cpu: number | null,
  ) {
    const nodeArgs = ['--import', 'tsx', WORKER_PATH, ...args];
    const [cmd, cmdArgs] =
      cpu === null ? [process.execPath, nodeArgs] : ['taskset', ['-c', String(cpu), process.execPath, ...nodeArgs]];
    // Worker stdout goes to our stderr, so our stdout carries only the table and the final JSON line.
    this.child = spawn(cmd, cmdArgs, { cwd: REPO_ROOT, stdio: ['ignore', 2, 2, 'ipc'] });
    live.add(this.child);
    let rejectFailed: (e: Error) => void = () => undefined;
    this.failed = new Promise<never>((_, reject) => (rejectFailed = reject));
    this.failed.catch(() => undefined);
    this.exited = new Promise<void>((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        if (!this.stopping) rejectFailed(new Error(`${label} exited early (${signal ?? `code ${code}`})`));
        resolve();
      });
    });
    this.child.once('error', (err) => rejectFailed(new Error(`${label}: ${err.message}`)));
    this.child.on('message', (m: ChildMsg) => {
      if (m.t === 'error') {
        this.stopping = true;
        rejectFailed(new Error(`${label} failed: ${m.message}`));
        return;
      }
      const waiter = this.waiters.get(m.t);
      if (waiter) waiter(m);
      else this.received.set(m.t, m);
    });
  }

  wait<T extends ChildMsg['t']>(t: T): Promise<Extract<ChildMsg, { t: T }>> {
    const got = this.received.get(t);
    if (got) return Promise.resolve(got as Extract<ChildMsg, { t: T }>);
    return new Promise((resolve) => this.waiters.set(t, resolve as (m: ChildMsg) => void));
  }

  send(msg: ParentMsg): void {
    if (this.child.connected) this.child.send(msg);
  }

  /** Asks the worker to close and exit; kills it if it has not exited within EXIT_GRACE_MS. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.send({ t: 'stop' });
    const timer = setTimeout(() => this.kill(), EXIT_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.stopping = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one system at one concurrency in fresh processes and returns both sides' reports. */
export async function runOnce(spec: RunSpec): Promise<RunReports> {
  const workers: WorkerProc[] = [];
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`run timed out after ${spec.timeoutMs} ms`)), spec.timeoutMs);
  });
  deadline.catch(() => undefined);
  /** Races a step against the deadline and against any worker failing. */
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, deadline, ...workers.map((w) => w.failed)]);
  try {
    const server = new WorkerProc(`${spec.system} server`, [spec.system, 'server'], spec.pin ? SERVER_CPU : null);
    workers.push(server);
    const { target } = await guard(server.wait('ready'));
    const clientArgs = [spec.system, 'client', target, String(spec.concurrency)];
    const client = new WorkerProc(`${spec.system} client`, clientArgs, spec.pin ? CLIENT_CPU : null);
    workers.push(client);
    await guard(client.wait('ready'));

    client.send({ t: 'start' });
    await guard(sleep(spec.warmupMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    await guard(sleep(spec.windowMs));
    server.send({ t: 'mark' });
    client.send({ t: 'mark' });
    const [c, s] = await guard(Promise.all([client.wait('report'), server.wait('report')]));
    await guard(client.stop());
    await guard(server.stop());
    return { client: asRole(c.report, 'client'), server: asRole(s.report, 'server') };
  } finally {
    clearTimeout(timer);
    for (const w of workers) w.kill();
  }
}

function asRole<R extends WorkerReport['role']>(r: WorkerReport, role: R): Extract<WorkerReport, { role: R }> {
  if (r.role !== role) throw new Error(`expected a ${role} report, got ${r.role}`);
  return r as Extract<WorkerReport, { role: R }>;
}
