/**
 * The soak's calls: per node, `unaryLoops` loops of unary calls (echo of 16 B..64 KiB, sleep up to 200 ms; a quarter
 * wait for ready), one loop of server streams (ticks: 10..400 messages) and one of bulk transfers (upload or download,
 * 64 KiB..8 MiB, seeded bytes), each to a random other node, with a random pause after each call (up to 100 ms, 500 ms
 * and 3 s: a steady load that leaves the machine some room, not a benchmark). Each call is
 * classified when it ends (verdict.ts) against the fault windows, and only counts are kept, so a long run's memory
 * does not grow with its calls. Knows nothing of how faults are made.
 */
import { seededSha256 } from '../fixtures/net-service.js';
import type { SoakCluster } from './cluster.js';
import type { SeededRandom } from './random.js';
import { CALL_KINDS, classifyCall, isTruncated, overlappedWindows, type CallKind, type CallOutcome, type CallResult, type FaultWindow } from './verdict.js';
import { sleep } from '../../helpers.js';

export type KindTally = Record<CallOutcome, number> & { inFault: number; bytes: number };

export interface WorkloadTally {
  byKind: Record<CallKind, KindTally>;
  /** Failure statuses, inside and outside fault windows. */
  codesInside: Record<string, number>;
  codesOutside: Record<string, number>;
  /** The first defects (failed outside, unexpected status, truncated), each a line. */
  defects: string[];
}

const UNARY_TIMEOUT_MS = 5_000;
const STREAM_TIMEOUT_MS = 20_000;
const BULK_TIMEOUT_MS = 60_000;
/** Commands get this long past their call's own deadline before the harness calls them hung (a frozen caller included). */
const HUNG_AFTER_MS = 120_000;
const BULK_SIZES = [64 * 1024, 256 * 1024 + 1, 1024 * 1024, 3 * 1024 * 1024 + 7, 8 * 1024 * 1024];
const MAX_DEFECT_LINES = 40;

export interface WorkloadOptions {
  unaryLoops: number;
  /** Run start, for the times in defect lines. */
  startedAt: number;
  /** The self-tests that work through calls: a bulk success checked one byte short; one call that overruns its deadline outside any fault. */
  fakeTruncation: boolean;
  fakeFailure: boolean;
}

export class Workload {
  readonly tally: WorkloadTally = {
    byKind: Object.fromEntries(CALL_KINDS.map((kind) => [kind, emptyKindTally()])) as Record<CallKind, KindTally>,
    codesInside: {},
    codesOutside: {},
    defects: [],
  };
  inFlight = 0;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly expectedSha = new Map<string, string>();
  private fakeTruncationDue: boolean;
  private fakeFailureDue: boolean;

  constructor(
    private readonly cluster: SoakCluster,
    private readonly windows: () => readonly FaultWindow[],
    private readonly random: SeededRandom,
    private readonly options: WorkloadOptions,
  ) {
    this.fakeTruncationDue = options.fakeTruncation;
    this.fakeFailureDue = options.fakeFailure;
  }

  start(): void {
    let salt = 0;
    for (let i = 0; i < this.cluster.size; i++) {
      for (let u = 0; u < this.options.unaryLoops; u++) this.loops.push(this.loop(i, this.random.fork(++salt), (r) => this.unary(i, r), 100));
      this.loops.push(this.loop(i, this.random.fork(++salt), (r) => this.stream(i, r), 500));
      this.loops.push(this.loop(i, this.random.fork(++salt), (r) => this.bulk(i, r), 3_000));
    }
  }

  /** Stops making calls and waits for those in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async loop(from: number, random: SeededRandom, call: (random: SeededRandom) => Promise<void>, maxPauseMs: number): Promise<void> {
    while (!this.stopping) {
      if (this.cluster.state(from) !== 'up') {
        await sleep(250);
        continue;
      }
      await call(random);
      await sleep(random.int(0, maxPauseMs));
    }
  }

  private target(from: number, random: SeededRandom): number {
    const to = random.int(0, this.cluster.size - 2);
    return to >= from ? to + 1 : to;
  }

  private async unary(from: number, random: SeededRandom): Promise<void> {
    const to = this.target(from, random);
    const peer = this.cluster.names[to]!;
    const waitForReady = random.next() < 0.25;
    if (this.fakeFailureDue && this.windows().every((w) => w.endsAt < Date.now())) {
      this.fakeFailureDue = false; // a sleep longer than its deadline, with no fault on: DEADLINE_EXCEEDED outside every window
      await this.measure('unary', from, to, 0, () => this.cluster.request(from, 'sleep', { peer, ms: 3_000, timeoutMs: 500 }, HUNG_AFTER_MS));
      return;
    }
    if (random.next() < 0.7) {
      const bytes = random.pick([16, 256, 4096, 65536]);
      await this.measure('unary', from, to, 2 * bytes, () => this.cluster.request(from, 'echo', { peer, bytes, timeoutMs: UNARY_TIMEOUT_MS, waitForReady }, UNARY_TIMEOUT_MS + HUNG_AFTER_MS));
    } else {
      const ms = random.int(0, 200);
      await this.measure('unary', from, to, 0, () => this.cluster.request(from, 'sleep', { peer, ms, timeoutMs: UNARY_TIMEOUT_MS, waitForReady }, UNARY_TIMEOUT_MS + HUNG_AFTER_MS));
    }
  }

  private async stream(from: number, random: SeededRandom): Promise<void> {
    const to = this.target(from, random);
    const count = random.int(10, 400);
    const bytes = random.pick([0, 64, 1024, 16384]);
    const args = { peer: this.cluster.names[to], count, bytes, timeoutMs: STREAM_TIMEOUT_MS };
    await this.measure('stream', from, to, count * bytes, async () => {
      const { received } = await this.cluster.request<{ received: number }>(from, 'ticks', args, STREAM_TIMEOUT_MS + HUNG_AFTER_MS);
      return received !== count ? 'truncated' : undefined;
    });
  }

  private async bulk(from: number, random: SeededRandom): Promise<void> {
    const to = this.target(from, random);
    const bytes = random.pick(BULK_SIZES);
    const seed = random.int(1, 8);
    const cmd = random.next() < 0.5 ? 'upload' : 'download';
    const asked = { bytes, sha256: this.sha256Of(seed, bytes) };
    await this.measure('bulk', from, to, bytes, async () => {
      const got = await this.cluster.request<{ bytes: number; sha256: string }>(from, cmd, { peer: this.cluster.names[to], bytes, seed, timeoutMs: BULK_TIMEOUT_MS }, BULK_TIMEOUT_MS + HUNG_AFTER_MS);
      if (this.fakeTruncationDue) {
        this.fakeTruncationDue = false; // --self-test truncation: as if the body had ended cleanly one byte short
        return isTruncated(asked, { bytes: got.bytes - 1, sha256: got.sha256 }) ? 'truncated' : undefined;
      }
      return isTruncated(asked, got) ? 'truncated' : undefined;
    });
  }

  /** The sha256 of a seed's bytes, computed here, not taken from either node. */
  private sha256Of(seed: number, bytes: number): string {
    const key = `${seed}:${bytes}`;
    let sha = this.expectedSha.get(key);
    if (sha === undefined) this.expectedSha.set(key, (sha = seededSha256(seed, bytes)));
    return sha;
  }

  /** Runs one call and counts it; `run` resolves 'truncated' for a success with the wrong bytes. */
  private async measure(kind: CallKind, from: number, to: number, bytes: number, run: () => Promise<unknown>): Promise<void> {
    const startedAt = Date.now();
    this.inFlight++;
    let code: string | undefined;
    let message = '';
    let truncated = false;
    try {
      truncated = (await run()) === 'truncated';
    } catch (error) {
      code = (error as { code?: string }).code ?? 'ERROR';
      message = (error as Error).message;
    } finally {
      this.inFlight--;
    }
    const call: CallResult = { kind, from: this.cluster.names[from]!, to: this.cluster.names[to]!, startedAt, endedAt: Date.now(), code, truncated };
    this.count(call, message, bytes);
  }

  private count(call: CallResult, message: string, bytes: number): void {
    const overlapped = overlappedWindows(call, this.windows());
    const outcome = classifyCall(call, overlapped);
    const tally = this.tally.byKind[call.kind];
    tally[outcome]++;
    if (overlapped.length > 0) tally.inFault++;
    if (outcome === 'ok') tally.bytes += bytes;
    if (call.code !== undefined) {
      const codes = overlapped.length > 0 ? this.tally.codesInside : this.tally.codesOutside;
      codes[call.code] = (codes[call.code] ?? 0) + 1;
    }
    if (outcome !== 'ok' && outcome !== 'failed-expected' && this.tally.defects.length < MAX_DEFECT_LINES) {
      const at = ((call.startedAt - this.options.startedAt) / 1000).toFixed(1);
      const during = overlapped.map((w) => `#${w.id} ${w.kind} ${w.host}`).join(', ') || 'no fault';
      this.tally.defects.push(`+${at}s ${call.kind} ${call.from}->${call.to} ${outcome}${call.code ? ` ${call.code}` : ''} (${call.endedAt - call.startedAt} ms; ${during})${message ? `: ${message}` : ''}`);
    }
  }
}

function emptyKindTally(): KindTally {
  return { ok: 0, truncated: 0, 'failed-expected': 0, 'failed-unexpected': 0, 'failed-outside': 0, inFault: 0, bytes: 0 };
}

