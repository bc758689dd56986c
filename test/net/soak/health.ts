/**
 * The soak's health samples: every `intervalMs`, each running node's soakHealth after a full GC (host-node.ts: RSS,
 * heap, external, active resources by kind, open connections), kept per host with the process it came from, so a
 * slope can be fitted across restarts (verdict.ts). A node that does not answer in time (frozen, being killed) has
 * no sample then. Also takes the samples at rest that handles and timers are compared on, the last ones once they
 * have settled.
 */
import type { NodeHealth, SoakCluster } from './cluster.js';
import { resourceGrowth } from './verdict.js';

export interface HealthSample extends NodeHealth {
  t: number;
  incarnation: number;
  incarnationStartedAt: number;
}

const SAMPLE_TIMEOUT_MS = 10_000;

export class HealthSampler {
  /** Per host, in time order. */
  readonly series: HealthSample[][];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;

  constructor(
    private readonly cluster: SoakCluster,
    private readonly intervalMs: number,
    /** The first process of each host counts from here (the calls' start), not from its own start: the warm-up is the calls'. */
    private readonly callsStartedAt: number,
  ) {
    this.series = cluster.names.map(() => []);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.sampling ??= this.sampleAll().finally(() => (this.sampling = undefined));
    }, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
  }

  private async sampleAll(): Promise<void> {
    await Promise.all(this.cluster.upHosts().map(async (i) => {
      const incarnation = this.cluster.incarnations[i]!;
      try {
        const health = await this.cluster.request<NodeHealth>(i, 'soakHealth', { gc: true }, SAMPLE_TIMEOUT_MS);
        if (this.cluster.incarnations[i] !== incarnation) return; // restarted meanwhile
        const incarnationStartedAt = incarnation === 1 ? this.callsStartedAt : this.cluster.startedAt[i]!;
        this.series[i]!.push({ ...health, t: Date.now(), incarnation, incarnationStartedAt });
      } catch {
        // frozen or killed while asked: no sample this time
      }
    }));
  }

  /** Every up node's health at rest (calls stopped, mesh converged), after a GC. */
  async atRest(): Promise<(NodeHealth | undefined)[]> {
    return Promise.all(this.cluster.names.map((_, i) => (this.cluster.state(i) === 'up' ? this.cluster.request<NodeHealth>(i, 'soakHealth', { gc: true }, SAMPLE_TIMEOUT_MS).catch(() => undefined) : undefined)));
  }

  /**
   * Samples at rest until no node has more handles or timers than at `start` beyond what its connections explain, or
   * `boundMs` has passed (timers that lapse on their own, as the write-stall watchdog after 60 s, are given that long);
   * resolves with the last samples and how long they took to settle.
   */
  async settled(start: readonly (NodeHealth | undefined)[], boundMs: number): Promise<{ samples: (NodeHealth | undefined)[]; settleMs: number }> {
    const began = Date.now();
    for (;;) {
      const samples = await this.atRest();
      const unsettled = samples.some((end, i) => end === undefined || start[i] === undefined || resourceGrowth(start[i]!, end).length > 0);
      if (!unsettled || Date.now() - began >= boundMs) return { samples, settleMs: Date.now() - began };
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  }

  latest(i: number): HealthSample | undefined {
    const series = this.series[i]!;
    return series[series.length - 1];
  }
}
