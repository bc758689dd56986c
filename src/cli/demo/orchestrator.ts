/**
 * `gridwire demo`'s conductor, in the command's own process: makes the run's directory and certificates, starts the
 * three nodes (node-process.ts), joins them into a mesh, starts the unary traffic and A's transfers to B and C, shows
 * their progress, kills and restarts B with --kill, checks the copies, and builds the summary. Every child is killed
 * and the directory removed on every way out (done, failed, SIGINT).
 *
 * The run, as states (each waits on the nodes' messages with a bound, and any failure ends in `cleanup`):
 *
 *   | state      | does                                              | next                           |
 *   |------------|---------------------------------------------------|--------------------------------|
 *   | prepare    | temp dir, free space, certificates                | spawn                          |
 *   | spawn      | A, B, C listening; each told the others' address  | meshing                        |
 *   | meshing    | until every node has control + data to each peer  | running                        |
 *   | running    | traffic everywhere, A sends to B and C            | verifying; killing (--kill 40%)|
 *   | killing    | window open, SIGKILL B, probe A -> B, restart B   | running (window closed)        |
 *   | verifying  | traffic stops; B and C hash their files           | summary                        |
 *   | cleanup    | every child killed, directory removed             | (exit code)                    |
 */
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliIo } from '../command.js';
import type { FromNode, LinkStates, NodeConfig, TransferProgress } from './messages.js';
import { NodeProcess } from './node-process.js';
import { makeDemoPki, type NodeCertFiles } from './pki.js';
import { formatBytes } from '../format.js';
import { CallTally, failedChecks, summarizeTransfer, summarizeUnary, type DemoSummary, type KillSummary, type TransferSummary } from './summary.js';
import { DemoView } from './view.js';

export interface DemoOptions {
  sizeBytes: number;
  kill: boolean;
  plain: boolean;
  json: boolean;
  /** Each node calls each peer this often. */
  intervalMs: number;
  /** Where the run's temporary directory goes. */
  parentDir: string;
  /** Test-only: this receiver flips one byte of its copy before hashing it. */
  corrupt?: string;
}

/** A check of the environment failed before any work (no openssl, no room): the command's exit code and message. */
export class DemoSetupError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

const NODES = ['A', 'B', 'C'] as const;
const RECEIVERS = ['B', 'C'] as const;
const DATASET = 'dataset.bin';
const TICK_MS = 250;
/** Where --kill kills B: this fraction of A -> B done. */
const KILL_AT = 0.4;
/** How long B stays dead before its restart: long enough to see its peers' redials fail. */
const DOWN_MS = 1_000;
const PROBE_TIMEOUT_MS = 5_000;
const STEP_TIMEOUT_MS = 20_000;
/** How long a node may take to stop when asked, before SIGKILL. */
const STOP_GRACE_MS = 2_000;
/** Room kept free beside the two copies. */
const SPARE_BYTES = 64 * 1024 * 1024;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = (): void => { clearTimeout(timer); reject(signal.reason as Error); };
    signal.addEventListener('abort', onAbort, { once: true });
  });

export class Demo {
  private readonly nodes = new Map<string, NodeProcess>();
  private readonly links = new Map<string, LinkStates>();
  private readonly tally = new CallTally();
  private readonly transfers = new Map<string, TransferProgress>();
  private readonly finished = new Map<string, { progress: TransferProgress; error?: string; sourceSha256?: string }>();
  private readonly urls: Record<string, string> = {};
  private readonly view: DemoView;
  private readonly signal: AbortSignal;
  /** Aborted when the run must stop: SIGINT (io.signal) or a node failing on its own. */
  private readonly stop = new AbortController();
  private dir = '';
  private certs: Record<string, NodeCertFiles> | undefined;
  private kill: KillSummary | undefined;
  private killing: Promise<void> | undefined;
  private onProgress: (() => void) | undefined;
  /** Each node process's CPU time at its last tick (a killed B and its restart apart). */
  private readonly cpuMs = new Map<NodeProcess, number>();
  /** Each node's highest RSS seen in a tick. */
  private readonly peakRss = new Map<string, number>();
  /** --kill: the dials of each node that failed while B was down. */
  private readonly failedDials = new Map<string, number>();
  /** The dataset's seed: a fresh one per run. */
  private seed = '';

  constructor(private readonly options: DemoOptions, private readonly io: CliIo) {
    this.signal = AbortSignal.any([io.signal, this.stop.signal]);
    this.view = new DemoView(io, options.json);
  }

  /** Runs the demo; resolves with its summary (rejects on a setup failure or SIGINT). Never leaves a child running. */
  async run(): Promise<DemoSummary> {
    const started = performance.now();
    // stdout closed under us (`gridwire demo | head`): stop the run, and clean up, rather than die on EPIPE
    const onOutputError = (error: Error): void => this.stop.abort(new Error(`cannot write the output: ${error.message}`));
    this.io.stdout.on('error', onOutputError);
    try {
      await this.prepare();
      await this.spawnAll();
      await this.formMesh();
      const { transfers, kill } = await this.transfer();
      const checksums = await this.verify();
      const base = {
        transport: this.options.plain ? 'plain TCP' as const : 'mutual TLS' as const,
        sizeBytes: this.options.sizeBytes,
        wallMs: Math.round(performance.now() - started),
        transfers,
        unary: summarizeUnary(this.tally, this.options.intervalMs),
        checksums,
        cpuMs: this.cpuByNode(),
        peakRssBytes: Object.fromEntries(NODES.map((name) => [name, this.peakRss.get(name) ?? 0])),
        ...(kill === undefined ? {} : { kill }),
      };
      const directions = NODES.flatMap((from) => NODES.filter((to) => to !== from).map((to) => `${from}->${to}`));
      const failed = failedChecks(base, directions, this.options.kill);
      return { ok: failed.length === 0, failed, ...base };
    } finally {
      this.view.close();
      await this.cleanup();
      this.io.stdout.off('error', onOutputError);
    }
  }

  private async prepare(): Promise<void> {
    this.dir = await mkdtemp(join(this.options.parentDir, 'gridwire-demo-'));
    const needed = 2 * this.options.sizeBytes + SPARE_BYTES;
    const fs = await statfs(this.dir);
    const free = fs.bavail * fs.bsize;
    if (free < needed) {
      throw new DemoSetupError(
        `not enough disk space: B and C each write a ${formatBytes(this.options.sizeBytes)} copy, so the demo needs ${formatBytes(needed)} free ` +
        `in ${this.options.parentDir}, which has ${formatBytes(free)}; give a smaller --size or another --dir`, 1);
    }
    if (!this.options.plain) this.certs = await makeDemoPki(this.dir, NODES);
    this.view.event(`run directory ${this.dir}; ${this.options.plain ? 'plain TCP (--plain)' : 'mutual TLS: a CA and one certificate per node (SAN DNS = its name), made now with openssl'}`);
  }

  private nodeConfig(name: string, listen: string, peers?: Record<string, string>): NodeConfig {
    return {
      name,
      listen,
      tickMs: TICK_MS,
      ...(this.certs === undefined ? {} : { tls: this.certs[name] }),
      ...((RECEIVERS as readonly string[]).includes(name) ? { storeDir: join(this.dir, `store-${name}`) } : {}),
      ...(peers === undefined ? {} : { peers }),
      ...(this.options.corrupt === name ? { corrupt: true } : {}),
    };
  }

  private startNode(config: NodeConfig): NodeProcess {
    const node = new NodeProcess(config, (from, message) => this.onMessage(from, message));
    this.nodes.set(config.name, node);
    // a node that dies when nobody killed it ends the run
    void node.exited.then(({ code, signal }) => {
      if (this.nodes.get(config.name) !== node || this.stop.signal.aborted) return;
      if (signal === 'SIGKILL' && this.killing !== undefined && config.name === 'B') return;
      this.stop.abort(new Error(`node ${config.name} exited unexpectedly (${signal ?? `code ${code}`})${node.lastWords()}`));
    });
    return node;
  }

  private async spawnAll(): Promise<void> {
    const scheme = this.options.plain ? 'tcp' : 'tls';
    const nodes = NODES.map((name) => this.startNode(this.nodeConfig(name, `${scheme}://127.0.0.1:0`)));
    const listening = await Promise.all(nodes.map((node) => node.next('listening', 'start listening', STEP_TIMEOUT_MS, this.signal)));
    for (const [i, node] of nodes.entries()) this.urls[node.name] = listening[i]!.url;
    this.view.event(`started ${nodes.map((n, i) => `${n.name} (pid ${listening[i]!.pid}) on ${listening[i]!.url}`).join(', ')}`);
    for (const node of nodes) node.send({ t: 'peers', peers: this.peersOf(node.name) });
  }

  private peersOf(name: string): Record<string, string> {
    return Object.fromEntries(Object.entries(this.urls).filter(([peer]) => peer !== name));
  }

  /** Resolves once every node has a control and a data connection to each of its peers. */
  private async allLinksUp(what: string, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    const up = (): boolean => NODES.every((name) => {
      const links = this.links.get(name);
      return NODES.every((peer) => peer === name || (links?.[peer]?.control === true && links[peer].data === true));
    });
    const until = performance.now() + timeoutMs;
    while (!up()) {
      if (performance.now() > until) throw new Error(`the mesh did not ${what} within ${timeoutMs / 1000} s (${JSON.stringify(Object.fromEntries(this.links))})`);
      await sleep(20, this.signal);
    }
  }

  private async formMesh(): Promise<void> {
    const start = performance.now();
    this.links.clear();
    await this.allLinksUp('form');
    this.view.event(`mesh up in ${Math.round(performance.now() - start)} ms: 3 pairs, each a control and a data connection over ${this.options.plain ? 'plain TCP' : 'mutual TLS'}`);
  }

  private async transfer(): Promise<{ transfers: TransferSummary[]; kill?: KillSummary }> {
    for (const node of this.nodes.values()) node.send({ t: 'traffic', intervalMs: this.options.intervalMs });
    this.seed = `gridwire-demo-${Date.now()}`;
    const holdAt = this.options.kill ? { to: 'B', offset: Math.floor(KILL_AT * this.options.sizeBytes) } : undefined;
    this.nodes.get('A')!.send({ t: 'replicate', to: [...RECEIVERS], size: this.options.sizeBytes, seed: this.seed, name: DATASET, ...(holdAt ? { holdAt } : {}) });
    this.view.event(`A replicates ${formatBytes(this.options.sizeBytes)} to B and C at the same time; unary calls every way meanwhile`);
    this.view.startProgress(RECEIVERS, this.options.sizeBytes);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(this.signal.reason as Error);
      this.signal.addEventListener('abort', onAbort, { once: true });
      this.onProgress = () => {
        if (this.finished.size < RECEIVERS.length) return;
        this.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      this.onProgress();
    });
    await this.killing;
    const transfers = RECEIVERS.map((to) => {
      const done = this.finished.get(to)!;
      return summarizeTransfer(done.progress, done.error);
    });
    return { transfers, ...(this.kill === undefined ? {} : { kill: this.kill }) };
  }

  private async verify(): Promise<DemoSummary['checksums']> {
    this.view.close(); // the bars' last state, then the events below them
    this.view.event('transfers done; traffic stops; B and C read their copies back and hash them');
    await Promise.all([...this.nodes.values()].map((node) => node.ask({ t: 'quiet' }, 'ack', 'stop its traffic', STEP_TIMEOUT_MS, this.signal)));
    const digests = await Promise.all(RECEIVERS.map((name) => this.finished.get(name)?.error !== undefined
      ? Promise.resolve(null)
      : this.nodes.get(name)!.ask({ t: 'verify', name: DATASET }, 'digest', 'hash its copy', 120_000, this.signal).then((d) => d.sha256)));
    // what A hashed as it generated and sent the dataset (the same for both transfers: one seed)
    const sources = [...new Set(RECEIVERS.map((name) => this.finished.get(name)?.sourceSha256).filter((d) => d !== undefined))];
    const source = sources.length === 1 ? sources[0]! : sources.join(' / ') || '(none)';
    const received = Object.fromEntries(RECEIVERS.map((name, i) => [name, digests[i] ?? null]));
    return { source, received, equal: Object.values(received).every((d) => d === source) };
  }

  /** CPU time per node name (both lives of a restarted B), and the orchestrator's own. */
  private cpuByNode(): Record<string, number> {
    const cpu: Record<string, number> = {};
    for (const name of NODES) cpu[name] = 0;
    for (const [node, ms] of this.cpuMs) cpu[node.name]! += ms;
    const own = process.cpuUsage();
    cpu.orchestrator = Math.round((own.user + own.system) / 1000);
    return cpu;
  }

  private onMessage(node: NodeProcess, message: FromNode): void {
    if (this.nodes.get(node.name) !== node) return; // a killed incarnation's last words
    switch (message.t) {
      case 'tick':
        this.cpuMs.set(node, message.cpuMs);
        this.peakRss.set(node.name, Math.max(this.peakRss.get(node.name) ?? 0, message.rssBytes));
        this.links.set(node.name, message.links);
        this.tally.add(node.name, message.calls);
        this.view.calls(message.calls);
        for (const progress of message.transfers) this.onTransferProgress(progress);
        if (message.transfers.length > 0) this.view.progress(message.transfers);
        break;
      case 'peer':
        this.onPeerEvent(node.name, message);
        break;
      case 'transfer-done':
      case 'transfer-failed':
        this.finished.set(message.transfer.to, { progress: message.transfer, ...(message.t === 'transfer-failed' ? { error: message.error } : { sourceSha256: message.sourceSha256 }) });
        this.view.progress([message.transfer]);
        if (message.t === 'transfer-done') this.view.ended(message.transfer.to, `whole sha256 confirmed by ${message.transfer.to}`, true);
        else this.view.ended(message.transfer.to, message.error, false);
        this.onProgress?.();
        break;
      case 'held':
        this.killing ??= this.killAndRestart(message).catch((error: unknown) => {
          this.stop.abort(error as Error);
        });
        break;
      case 'failed':
        this.stop.abort(new Error(`node ${node.name}: ${message.error}`));
        break;
      default:
        break;
    }
  }

  /**
   * While B is down (--kill): the first loss each node sees is shown, the failed redials that follow only counted
   * (shown once the mesh is whole again).
   */
  private onPeerEvent(observer: string, event: Extract<FromNode, { t: 'peer' }>): void {
    if (this.killing === undefined || this.kill?.downMs !== undefined || observer === 'B' || event.lane !== 'control' || event.state === 'ready') return;
    const seen = this.failedDials.get(observer);
    if (seen === undefined) {
      this.failedDials.set(observer, 0);
      this.view.event(`${observer} lost ${event.peer}${event.error === undefined ? '' : ` (${event.error})`}: calls to it fail at once, redialing`);
    } else if (event.state === 'backoff') {
      this.failedDials.set(observer, seen + 1);
    }
  }

  private onTransferProgress(progress: TransferProgress): void {
    const before = this.transfers.get(progress.to);
    this.transfers.set(progress.to, progress);
    if (before !== undefined && progress.attempts > before.attempts && progress.resumedFrom > 0) {
      this.view.event(`A -> ${progress.to}: resumed from ${formatBytes(progress.resumedFrom)} (${progress.to}'s last verified offset), attempt ${progress.attempts}`);
    }
  }

  /** --kill: B dies by SIGKILL, A sees a fail-fast UNAVAILABLE, B restarts on its old address, the mesh redials. */
  private async killAndRestart(held: { offset: number; verified: number }): Promise<void> {
    const victim = this.nodes.get('B')!;
    const a = this.nodes.get('A')!;
    this.kill = { atBytes: held.verified, atPercent: Math.round((100 * held.offset) / this.options.sizeBytes) };
    // failures of calls to and from B count as expected from here until the mesh is whole again
    await Promise.all(['A', 'C'].map((name) => this.nodes.get(name)!.ask({ t: 'window', node: 'B' }, 'ack', 'open the kill window', STEP_TIMEOUT_MS, this.signal)));
    const lost = a.next('peer', 'notice that B is gone', STEP_TIMEOUT_MS, this.signal, (m) => m.peer === 'B' && m.state !== 'ready');
    const killedAt = performance.now();
    this.view.event(`--kill: SIGKILL to B (pid ${victim.pid}) with A -> B at ${this.kill.atPercent} %`);
    victim.kill();
    await victim.exited;
    a.send({ t: 'release', to: 'B' });
    await lost;
    const probe = await a.ask({ t: 'probe', peer: 'B', timeoutMs: PROBE_TIMEOUT_MS }, 'probed', 'call B', STEP_TIMEOUT_MS, this.signal);
    this.kill.probe = { status: probe.status, ms: probe.ms, timeoutMs: PROBE_TIMEOUT_MS };
    this.view.event(`fail-fast: a call from A to B ended ${probe.status} after ${probe.ms.toFixed(2)} ms (its deadline was ${PROBE_TIMEOUT_MS / 1000} s)${probe.message === '' ? '' : `: ${probe.message}`}`);
    await sleep(Math.max(0, DOWN_MS - (performance.now() - killedAt)), this.signal);
    const reborn = this.startNode(this.nodeConfig('B', this.urls.B!, this.peersOf('B')));
    this.links.delete('B');
    const listening = await reborn.next('listening', 'listen again', STEP_TIMEOUT_MS, this.signal);
    const restartedAt = performance.now();
    this.kill.downMs = Math.round(restartedAt - killedAt);
    this.view.event(`B restarted (pid ${listening.pid}), listening on ${listening.url} again ${(this.kill.downMs / 1000).toFixed(1)} s after the kill, with its store directory`);
    await this.allLinksUp('redial B');
    this.kill.redialMs = Math.round(performance.now() - restartedAt);
    const refused = [...this.failedDials].map(([observer, n]) => `${observer} ${n}`).join(', ');
    this.view.event(`mesh whole again ${this.kill.redialMs} ms later: A-B and B-C redialed, control and data lanes (failed dials while B was down: ${refused || 'none'})`);
    reborn.send({ t: 'traffic', intervalMs: this.options.intervalMs });
    await Promise.all(['A', 'C'].map((name) => this.nodes.get(name)!.ask({ t: 'window', node: null }, 'ack', 'close the kill window', STEP_TIMEOUT_MS, this.signal)));
  }

  /**
   * Every child stopped, the run's directory removed. A node is asked to stop (it closes its mesh with GOAWAY, and a
   * node run with --cpu-prof writes its profile), and SIGKILLed if it has not exited within STOP_GRACE_MS.
   */
  private async cleanup(): Promise<void> {
    const nodes = [...this.nodes.values()].filter((node) => node.running);
    for (const node of nodes) node.send({ t: 'stop' });
    const grace = setTimeout(() => nodes.forEach((node) => node.kill()), this.signal.aborted ? 0 : STOP_GRACE_MS);
    await Promise.all(nodes.map((node) => node.exited));
    clearTimeout(grace);
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true });
  }
}
