// One side (server or client) of a measured pair run, any system and scenario. The side owns the timeline; the
// scenario (../systems/) owns the protocol:
//   ready   the server has started (and says where), the client has connected; memory is sampled
//   start   (client) the load starts; `armed` once its set-up is done
//   mark 1  the window opens: byte meters, CPU, time and memory snapshot; latency samples are kept from here
//   mark 2  the window closes (time and CPU end here), snapshot, stopSending aborts; once the side's work has ended
//           cleanly (finish) the side sends its report
//   stop    close and exit
// With --expose-gc (the memory suites) every snapshot follows a collection, so the marks show what is retained rather
// than what the collector has not reached yet; with samplePeakRss, RSS is also sampled every SAMPLE_MS for its peak.
import { performance } from 'node:perf_hooks';
import type { MarkSnapshot, MemorySample, ParentMsg, SideReport, SideSpec } from '../messages.js';
import { LatencyRecorder } from '../stats.js';
import { loadScenario } from '../systems/index.js';
import { ByteMeter, type ScenarioClient, type ScenarioServer, type SideContext } from '../systems/scenario.js';
import { closeAndExit, fail, sampleMemory, send } from './child.js';

const SAMPLE_MS = 50;

/** The measuring half of a side: meters, latency samples inside the window, marks, CPU and memory. */
class Recorder {
  private readonly stop = new AbortController();
  private readonly latencies = new LatencyRecorder();
  private readonly marks: MarkSnapshot[] = [];
  private inWindow = false;
  private cpu0: NodeJS.CpuUsage = process.cpuUsage();
  private t0 = 0;
  private window: { elapsedMs: number; cpu: NodeJS.CpuUsage } | undefined;
  private readyMemory: MemorySample | undefined;
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

  constructor(private readonly samplePeakRss: boolean) {}

  ready(): MemorySample {
    this.readyMemory = sampleMemory();
    this.peakRss = this.readyMemory.rss;
    if (this.samplePeakRss) {
      this.sampler = setInterval(() => (this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss())), SAMPLE_MS);
    }
    return this.readyMemory;
  }

  /** The first mark: snapshot, then the window opens. */
  open(): void {
    this.snapshot();
    this.inWindow = true;
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
  }

  /** The second mark: time and CPU end here (before the side's clean end), then the snapshot; stop sending. */
  close(): void {
    this.window = { elapsedMs: performance.now() - this.t0, cpu: process.cpuUsage(this.cpu0) };
    this.inWindow = false;
    this.snapshot();
    clearInterval(this.sampler);
    this.stop.abort();
  }

  /** The report, once the side's work has ended cleanly: `final` holds the byte totals the count check uses. */
  report(side: 'client' | 'server'): SideReport {
    const [m1, m2] = this.marks;
    if (m1 === undefined || m2 === undefined || this.window === undefined || this.readyMemory === undefined) {
      throw new Error('report before the second mark');
    }
    const [p50Us = NaN, p99Us = NaN] = this.latencies.percentilesUs([0.5, 0.99]);
    return {
      side,
      elapsedMs: this.window.elapsedMs,
      cpu: { userUs: this.window.cpu.user, systemUs: this.window.cpu.system },
      ready: this.readyMemory,
      peakRss: Math.max(this.peakRss, m1.rss, m2.rss),
      marks: [m1, m2],
      final: this.totals(),
      latency: { count: this.latencies.count, p50Us, p99Us },
      facts: this.ctx.facts,
    };
  }

  private totals(): { sentBytes: number; receivedBytes: number } {
    return { sentBytes: this.ctx.sent.total, receivedBytes: this.ctx.received.total };
  }

  private snapshot(): void {
    this.marks.push({ ...this.totals(), ...sampleMemory() });
  }
}

export async function runSide(spec: SideSpec): Promise<void> {
  const scenario = await loadScenario(spec);
  const rec = new Recorder(spec.samplePeakRss);
  const side: ScenarioServer | ScenarioClient =
    spec.role === 'server' ? await scenario.startServer(rec.ctx) : await scenario.connectClient(spec.target, rec.ctx);
  let marks = 0;
  process.on('message', function sideOnParentMsg(msg: ParentMsg) {
    if (msg.t === 'start' && 'start' in side) {
      side.start().then(() => send({ t: 'armed' }), fail);
    } else if (msg.t === 'mark' && ++marks === 1) {
      rec.open();
    } else if (msg.t === 'mark' && marks === 2) {
      rec.close();
      side.finish().then(() => send({ t: 'report', report: rec.report(spec.role) }), fail);
    } else if (msg.t === 'stop') {
      void closeAndExit(() => side.close());
    }
  });
  const memory = rec.ready();
  send({ t: 'ready', target: 'target' in side ? side.target : spec.target, memory });
}
