/**
 * The soak's faults: a seeded plan (printed at the start) of partitions, kill -9 and restart, SIGSTOP then SIGCONT, and
 * degraded links, one at a time, each on one host (so with 3 hosts or more, at least 2 stay healthy), run in order
 * while the time allows. Each fault opens a window when it is injected; the window closes once the fault is undone,
 * the mesh has reconverged (every running node echoes every other) and `marginMs` more has passed.
 *
 *   per fault:  inject ── hold ──▶ undo ── probe rounds ──▶ reconverged ── margin ──▶ window closed ── gap ──▶ next
 */
import { shapeLink } from '../fixtures/links.js';
import type { SoakCluster } from './cluster.js';
import type { SeededRandom } from './random.js';
import type { FaultKind, FaultWindow } from './verdict.js';
import { sleep } from '../../helpers.js';

export interface PlannedFault {
  kind: FaultKind;
  /** Host index (0-based). */
  host: number;
  holdMs: number;
  /** Quiet time after the window closes. */
  gapMs: number;
}

export interface FaultRecord extends FaultWindow {
  holdMs: number;
  /** From undoing the fault to the mesh's reconvergence; undefined when it did not reconverge. */
  reconvergeMs: number | undefined;
  error: string | undefined;
}

/** How long each kind holds, ms (min, max): partitions and freezes both shorter and longer than keepalive's detection. */
const HOLD_MS: Record<FaultKind, [number, number]> = {
  partition: [8_000, 30_000],
  kill: [2_000, 10_000],
  freeze: [3_000, 15_000],
  degrade: [20_000, 40_000],
};
const GAP_MS: [number, number] = [5_000, 15_000];
/** A mesh that has not reconverged this long after a fault was undone fails the run. */
export const RECONVERGE_BOUND_MS = 120_000;
/** A fault starts only when this much time is left after its hold (its recovery, typically 2-40 s, and margin). */
const RECOVERY_ALLOWANCE_MS = 45_000;

/** Faults in cycles of every kind, each cycle in a seeded order, each on a seeded host other than the last one's. */
export function planFaults(random: SeededRandom, hosts: number, kinds: readonly FaultKind[], count: number): PlannedFault[] {
  const plan: PlannedFault[] = [];
  let lastHost = -1;
  while (plan.length < count) {
    for (const kind of random.shuffled(kinds)) {
      let host = random.int(0, hosts - 1);
      if (host === lastHost) host = (host + 1) % hosts;
      lastHost = host;
      const [lo, hi] = HOLD_MS[kind];
      plan.push({ kind, host, holdMs: random.int(lo, hi), gapMs: random.int(GAP_MS[0], GAP_MS[1]) });
    }
  }
  return plan.slice(0, count);
}

export interface FaultRunnerOptions {
  marginMs: number;
  seed: number;
  /** Called after a killed node is running again (the leak self-test starts its leak there too). */
  onRestart: (host: number) => Promise<void>;
  log: (line: string) => void;
}

export class FaultRunner {
  readonly records: FaultRecord[] = [];
  /** The fault on now, if any (for the progress line). */
  current: FaultRecord | undefined;

  constructor(
    private readonly cluster: SoakCluster,
    private readonly options: FaultRunnerOptions,
  ) {}

  /** The windows so far, open ones with endsAt Infinity. */
  windows(): readonly FaultWindow[] {
    return this.records;
  }

  /** Runs the plan from `startAt` until no fault fits before `endBy`. */
  async run(plan: readonly PlannedFault[], startAt: number, endBy: number): Promise<void> {
    await sleepUntil(startAt);
    for (const fault of plan) {
      if (Date.now() + fault.holdMs + RECOVERY_ALLOWANCE_MS + this.options.marginMs > endBy) break;
      await this.one(fault);
      await sleepUntil(Math.min(endBy, Date.now() + fault.gapMs));
    }
  }

  private async one(fault: PlannedFault): Promise<void> {
    const name = this.cluster.names[fault.host]!;
    const record: FaultRecord = { id: this.records.length + 1, kind: fault.kind, host: name, injectedAt: Date.now(), endsAt: Infinity, holdMs: fault.holdMs, reconvergeMs: undefined, error: undefined };
    this.records.push(record);
    this.current = record;
    this.options.log(`fault #${record.id}: ${describe(fault, name)}`);
    try {
      await this.inject(fault);
      const undoneAt = Date.now();
      const reconvergedAt = await this.cluster.waitConverged(RECONVERGE_BOUND_MS);
      record.reconvergeMs = reconvergedAt - undoneAt;
      this.options.log(`fault #${record.id}: undone; the mesh reconverged ${(record.reconvergeMs / 1000).toFixed(1)} s later`);
    } catch (error) {
      record.error = (error as Error).message;
      this.options.log(`fault #${record.id}: ${record.error}`);
    }
    await sleepUntil(Date.now() + this.options.marginMs);
    record.endsAt = Date.now();
    this.current = undefined;
  }

  private async inject(fault: PlannedFault): Promise<void> {
    const { cluster } = this;
    const host = cluster.host(fault.host);
    switch (fault.kind) {
      case 'partition':
        await cluster.network.partition(host);
        await sleep(fault.holdMs);
        await cluster.network.heal(host);
        return;
      case 'kill':
        await cluster.kill(fault.host);
        await sleep(fault.holdMs);
        await this.restart(fault.host);
        return;
      case 'freeze':
        cluster.freeze(fault.host);
        await sleep(fault.holdMs);
        cluster.thaw(fault.host);
        return;
      case 'degrade': {
        const link = await shapeLink(cluster.network, host, { ...DEGRADED, seed: this.options.seed + fault.host });
        try {
          await sleep(fault.holdMs);
        } finally {
          await link.clear();
        }
        return;
      }
    }
  }

  /** startNode again on the same host; a failed start is retried (twice) before the fault fails the run. */
  private async restart(host: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.cluster.start(host);
        await this.options.onRestart(host);
        return;
      } catch (error) {
        if (attempt >= 3) throw error;
        this.options.log(`restart of ${this.cluster.names[host]} failed (${(error as Error).message.split('\n')[0]}); again`);
        await sleep(1_000);
      }
    }
  }
}

/** The degraded link towards the host: the "degraded links" (delay 50 ± 10 ms, 1 % loss, reorder, duplicates). */
const DEGRADED = { delayMs: 50, jitterMs: 10, lossPercent: 1, reorderPercent: 5, duplicatePercent: 1 };

export function describe(fault: PlannedFault, name: string): string {
  const hold = `${(fault.holdMs / 1000).toFixed(1)} s`;
  switch (fault.kind) {
    case 'partition':
      return `partition ${name} for ${hold}, then heal`;
    case 'kill':
      return `kill -9 ${name}, restart it ${hold} later`;
    case 'freeze':
      return `SIGSTOP ${name}, SIGCONT ${hold} later`;
    case 'degrade':
      return `degrade the link towards ${name} for ${hold} (delay 50±10 ms, loss 1 %, reorder 5 %, duplicate 1 %)`;
  }
}

function sleepUntil(at: number): Promise<void> {
  return sleep(Math.max(0, at - Date.now()));
}
