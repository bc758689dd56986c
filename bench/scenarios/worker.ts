// One side of one scenario run, in its own process (started by ../harness.ts over a fork IPC channel):
//   node --import tsx bench/scenarios/worker.ts <scenario> <system> server
//   node --import tsx bench/scenarios/worker.ts <scenario> <system> client <target>
// The worker owns the timeline; the scenario owns the protocol. On `start` the client starts its load and answers
// `armed` once set up; at each `mark` both sides snapshot their byte meters, CPU and memory; at the second they also
// abort stopSending, wait for their side to end cleanly (finish), and report. RSS is sampled every SAMPLE_MS from
// `ready` to the second mark for its peak. Started with --expose-gc (the rss suite), it collects garbage before each snapshot, so
// the marks show what is retained rather than what the collector has not reached yet.
import { performance } from 'node:perf_hooks';
import { closeAndExit, fail, send } from '../child.js';
import type { MarkSnapshot, MemorySample, ParentMsg, ScenarioReport } from '../protocol.js';
import { LatencyRecorder } from '../stats.js';
import { isScenarioName, isScenarioSystem, loadScenario } from './index.js';
import { ByteMeter, type ScenarioClient, type ScenarioServer, type SideContext } from './scenario.js';

const SAMPLE_MS = 50;
const collectGarbage = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

function sampleMemory(): MemorySample {
  collectGarbage();
  const { rss, heapTotal, heapUsed, external } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external };
}

/** The measuring half of a side: meters, latency samples inside the window, marks, CPU and memory. */
class Recorder {
  private readonly stop = new AbortController();
  private readonly latencies = new LatencyRecorder();
  private inWindow = false;
  private readonly marks: MarkSnapshot[] = [];
  private cpu0: NodeJS.CpuUsage = process.cpuUsage();
  private t0 = 0;
  private window: { elapsedMs: number; cpu: NodeJS.CpuUsage } | undefined;
  private readyMemory: MemorySample = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  private peakRss = 0;
  private sampler: NodeJS.Timeout | undefined;
  readonly ctx: SideContext = {
    received: new ByteMeter(),
    sent: new ByteMeter(),
    stopSending: this.stop.signal,
    facts: {},
    fail,
    recordLatency: (ms) => {
      if (this.inWindow) this.latencies.record(ms);
    },
  };

  ready(): void {
    this.readyMemory = sampleMemory();
    this.peakRss = this.readyMemory.rss;
    this.sampler = setInterval(() => (this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss())), SAMPLE_MS);
  }

  /** Opens the window. */
  firstMark(): void {
    this.snapshot();
    this.inWindow = true;
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
  }

  /** Closes the window (time and CPU end here, before the clean end), then tells the side to stop sending. */
  secondMark(): void {
    this.window = { elapsedMs: performance.now() - this.t0, cpu: process.cpuUsage(this.cpu0) };
    this.inWindow = false;
    clearInterval(this.sampler);
    this.snapshot();
    this.peakRss = Math.max(this.peakRss, this.marks[1]?.rss ?? 0);
    this.stop.abort();
  }

  /** The report, once the side's work has ended cleanly: `final` holds the byte totals the count check uses. */
  report(side: 'client' | 'server'): ScenarioReport {
    const [m1, m2] = this.marks;
    if (m1 === undefined || m2 === undefined || this.window === undefined) throw new Error('report before the second mark');
    const [p50Us = NaN, p99Us = NaN] = this.latencies.percentilesUs([0.5, 0.99]);
    return {
      role: 'scenario',
      side,
      elapsedMs: this.window.elapsedMs,
      cpu: { userUs: this.window.cpu.user, systemUs: this.window.cpu.system },
      ready: this.readyMemory,
      peakRss: this.peakRss,
      marks: [m1, m2],
      final: { sentBytes: this.ctx.sent.total, receivedBytes: this.ctx.received.total },
      latency: { count: this.latencies.count, p50Us, p99Us },
      facts: this.ctx.facts,
    };
  }

  private snapshot(): void {
    this.marks.push({ sentBytes: this.ctx.sent.total, receivedBytes: this.ctx.received.total, ...sampleMemory() });
  }
}

type Side = ScenarioServer | ScenarioClient;

async function runSide(role: 'client' | 'server', open: (ctx: SideContext) => Promise<Side>, target: string): Promise<void> {
  const rec = new Recorder();
  const side = await open(rec.ctx);
  let marks = 0;
  process.on('message', function scenarioOnParentMsg(msg: ParentMsg) {
    if (msg.t === 'start' && 'start' in side) {
      side.start().then(() => send({ t: 'armed' }), fail);
    } else if (msg.t === 'mark' && ++marks === 1) {
      rec.firstMark();
    } else if (msg.t === 'mark' && marks === 2) {
      rec.secondMark();
      side.finish().then(() => send({ t: 'report', report: rec.report(role) }), fail);
    } else if (msg.t === 'stop') {
      void closeAndExit(() => side.close());
    }
  });
  rec.ready();
  send({ t: 'ready', target: 'target' in side ? side.target : target });
}

async function main(): Promise<void> {
  if (process.send === undefined) {
    console.error('bench/scenarios/worker.ts is started by bench/run.ts (it needs the fork IPC channel)');
    process.exit(2);
  }
  process.on('disconnect', () => process.exit(1)); // the orchestrator is gone: do not linger
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  const [name = '', system = '', role, target = ''] = process.argv.slice(2);
  if (!isScenarioName(name)) fail(new Error(`unknown scenario '${name}'`));
  if (!isScenarioSystem(system)) fail(new Error(`unknown system '${system}'`));
  const scenario = await loadScenario(system, name);
  if (role === 'server') await runSide('server', (ctx) => scenario.startServer(ctx), '');
  else if (role === 'client') await runSide('client', (ctx) => scenario.connectClient(target, ctx), target);
  else fail(new Error(`unknown role '${String(role)}'`));
}

main().catch(fail);
