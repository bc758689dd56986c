// One side of one scenario run, in its own process (started by ../harness.ts over a fork IPC channel):
//   node --import tsx bench/scenarios/worker.ts <scenario> <system> server
//   node --import tsx bench/scenarios/worker.ts <scenario> <system> client <target>
// The worker owns the timeline; the scenario owns the protocol. On `start` the client starts its load and answers
// `armed` once set up; at each `mark` both sides snapshot their byte meters, CPU and memory; at the second they also
// abort stopSending, wait for their side to end cleanly (finish), and report. RSS is sampled every SAMPLE_MS from
// `ready` to the second mark for its peak. Started with --expose-gc (the rss suite), it collects garbage before each snapshot, so
// the marks show what is retained rather than what the collector has not reached yet.
import { closeAndExit, fail, initWorker, send } from '../child.js';
import type { MemorySample, ParentMsg, ScenarioReport } from '../protocol.js';
import { MeasuredWindow, sampleMemory } from '../window.js';
import { isScenarioName, isScenarioSystem, loadScenario } from './index.js';
import { ByteMeter, type ScenarioClient, type ScenarioServer, type SideContext } from './scenario.js';

const SAMPLE_MS = 50;

/** The measuring half of a side: meters, latency samples inside the window, marks, CPU and memory. */
class Recorder {
  private readonly stop = new AbortController();
  private readonly window = new MeasuredWindow(() => ({ sentBytes: this.ctx.sent.total, receivedBytes: this.ctx.received.total }));
  private readyMemory: MemorySample = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  private peakRss = 0;
  private sampler: NodeJS.Timeout | undefined;
  readonly ctx: SideContext = {
    received: new ByteMeter(),
    sent: new ByteMeter(),
    stopSending: this.stop.signal,
    facts: {},
    fail,
    recordLatency: (ms) => this.window.record(ms),
  };

  ready(): void {
    this.readyMemory = sampleMemory();
    this.peakRss = this.readyMemory.rss;
    this.sampler = setInterval(() => (this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss())), SAMPLE_MS);
  }

  /** Opens the window. */
  firstMark(): void {
    this.window.open();
  }

  /** Closes the window (time and CPU end here, before the clean end), then tells the side to stop sending. */
  secondMark(): void {
    this.window.close();
    clearInterval(this.sampler);
    this.peakRss = Math.max(this.peakRss, this.window.marks[1]?.rss ?? 0);
    this.stop.abort();
  }

  /** The report, once the side's work has ended cleanly. */
  report(side: 'client' | 'server'): ScenarioReport {
    return this.window.report(side, { ready: this.readyMemory, peakRss: this.peakRss }, this.ctx.facts);
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
  initWorker('bench/scenarios/worker.ts');
  const [name = '', system = '', role, target = ''] = process.argv.slice(2);
  if (!isScenarioName(name)) fail(new Error(`unknown scenario '${name}'`));
  if (!isScenarioSystem(system)) fail(new Error(`unknown system '${system}'`));
  const scenario = await loadScenario(system, name);
  if (role === 'server') await runSide('server', (ctx) => scenario.startServer(ctx), '');
  else if (role === 'client') await runSide('client', (ctx) => scenario.connectClient(target, ctx), target);
  else fail(new Error(`unknown role '${String(role)}'`));
}

main().catch(fail);
