/**
 * The soak's checks fail on the defects they are for (verdict.ts), without a network: a failure outside every fault
 * window, an unexpected status inside one, a "success" one byte short, a node whose memory floor climbs, a timer more
 * at rest. (The whole soak's self-tests, `npm run soak -- --self-test ...`, show the same end to end.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { overBudget } from './summary.js';
import { classifyCall, isTruncated, memorySlope, overlappedWindows, pooledSlope, resourceGrowth, type CallResult, type FaultWindow, type HealthPoint } from './verdict.js';

const MiB = 2 ** 20;
const windows: FaultWindow[] = [
  { id: 1, kind: 'partition', host: 'n2', injectedAt: 1_000, endsAt: 2_000 },
  { id: 2, kind: 'kill', host: 'n3', injectedAt: 5_000, endsAt: Infinity },
];
const call = (startedAt: number, endedAt: number, extra: Partial<CallResult> = {}): CallResult => ({ kind: 'unary', from: 'n1', to: 'n2', startedAt, endedAt, ...extra });

void describe('soak verdict', () => {
  void it('a call overlaps the windows it shares a moment with, an open window included', () => {
    assert.deepEqual(overlappedWindows(call(0, 999), windows).map((w) => w.id), []);
    assert.deepEqual(overlappedWindows(call(0, 1_000), windows).map((w) => w.id), [1]);
    assert.deepEqual(overlappedWindows(call(1_500, 6_000), windows).map((w) => w.id), [1, 2]);
    assert.deepEqual(overlappedWindows(call(2_001, 4_999), windows).map((w) => w.id), []);
    assert.deepEqual(overlappedWindows(call(9_000, 9_500), windows).map((w) => w.id), [2]);
  });

  void it('a failure outside every window is a defect; inside, only an expected status is not', () => {
    const classify = (c: CallResult): string => classifyCall(c, overlappedWindows(c, windows));
    assert.equal(classify(call(3_000, 3_100)), 'ok');
    assert.equal(classify(call(3_000, 3_100, { code: 'UNAVAILABLE' })), 'failed-outside');
    assert.equal(classify(call(1_100, 1_200, { code: 'UNAVAILABLE' })), 'failed-expected');
    assert.equal(classify(call(1_100, 1_200, { code: 'DEADLINE_EXCEEDED' })), 'failed-expected');
    assert.equal(classify(call(1_100, 1_200, { code: 'CANCELLED' })), 'failed-expected');
    assert.equal(classify(call(1_100, 1_200, { code: 'INTERNAL' })), 'failed-unexpected');
    assert.equal(classify(call(1_100, 1_200, { code: 'ERROR' })), 'failed-unexpected');
    // the harness losing its caller: expected only when the caller is the node that was killed
    assert.equal(classify(call(5_100, 5_200, { code: 'NODE_EXITED', from: 'n3' })), 'failed-expected');
    assert.equal(classify(call(5_100, 5_200, { code: 'NODE_EXITED', from: 'n1' })), 'failed-unexpected');
    assert.equal(classify(call(1_100, 1_200, { code: 'NODE_EXITED', from: 'n2' })), 'failed-unexpected'); // a partition kills no one
  });

  void it('a success with the wrong bytes is a truncation, inside a fault window too', () => {
    const asked = { bytes: 1_048_576, sha256: 'aa' };
    assert.equal(isTruncated(asked, { bytes: 1_048_576, sha256: 'aa' }), false);
    assert.equal(isTruncated(asked, { bytes: 1_048_575, sha256: 'aa' }), true);
    assert.equal(isTruncated(asked, { bytes: 1_048_576, sha256: 'ab' }), true);
    assert.equal(classifyCall(call(1_100, 1_200, { truncated: true }), windows), 'truncated');
  });

  void it('the pooled slope ignores the drop of a restart and finds the climb within each process', () => {
    const hour = 3_600_000;
    const points = [
      ...[0, 1, 2, 3].map((k) => ({ t: (k * hour) / 4, y: 100 + 10 * k, group: 1 })),
      ...[4, 5, 6, 7].map((k) => ({ t: (k * hour) / 4, y: 20 + 10 * (k - 4), group: 2 })), // restarted lower, climbs alike
    ];
    assert.ok(Math.abs(pooledSlope(points)!.perHour - 40) < 1e-9);
    assert.ok(pooledSlope(points.map((p) => ({ ...p, group: 0 })))!.perHour < 0, 'one intercept would see a fall');
    assert.equal(pooledSlope(points.slice(0, 2)), undefined);
  });

  void it('a memory floor that climbs past the budget is seen through bulk spikes; a flat one with spikes is not', () => {
    const sample = (t: number, value: number): HealthPoint => ({ t, incarnation: 1, incarnationStartedAt: 0, value });
    const flat: HealthPoint[] = [];
    const leaking: HealthPoint[] = [];
    for (let t = 0; t <= 600_000; t += 5_000) {
      const spike = t % 35_000 === 0 ? 40 * MiB : 0; // a bulk transfer in flight at some samples
      flat.push(sample(t, 120 * MiB + spike));
      leaking.push(sample(t, 120 * MiB + spike + (t / 3_600_000) * 100 * MiB)); // 100 MiB/h
    }
    const slopeOf = (points: HealthPoint[]): number => memorySlope(points, 300_000, 60_000, 30_000, 30_000)!.perHour / MiB;
    assert.ok(Math.abs(slopeOf(flat)) < 16, `flat: ${slopeOf(flat)} MiB/h`);
    assert.ok(slopeOf(leaking) > 64, `leaking: ${slopeOf(leaking)} MiB/h`);
    assert.equal(memorySlope(flat, 590_000, 60_000, 30_000, 30_000), undefined, 'too little time: no verdict');
    // a process restarted late is left out until its warm-up is over
    const restarted = flat.map((p) => (p.t >= 500_000 ? { ...p, incarnation: 2, incarnationStartedAt: 500_000, value: p.value + (p.t - 500_000) * 1000 } : p));
    assert.ok(Math.abs(memorySlope(restarted, 300_000, 120_000, 30_000, 30_000)!.perHour / MiB) < 16);
  });

  void it('a slope is over budget only beyond two standard errors of its fit', () => {
    assert.equal(overBudget(72, 60, 64), false, 'a late restart: few floors, a wide error');
    assert.equal(overBudget(1754, 435, 64), true, 'the self-test leak');
    assert.equal(overBudget(70, 2, 64), true, 'a tight fit just over');
    assert.equal(overBudget(undefined, undefined, 64), false);
  });

  void it('handles and timers at rest may not grow beyond what open connections explain', () => {
    const start = { resources: { TCPSocketWrap: 3, TCPServerWrap: 1, TimersAll: 3 }, connections: 3 };
    const end = (resources: Record<string, number>, connections = 3) => ({ resources: { ...start.resources, ...resources }, connections });
    assert.deepEqual(resourceGrowth(start, start), []);
    assert.deepEqual(resourceGrowth(start, end({ TimersAll: 2 })), []);
    assert.deepEqual(resourceGrowth(start, end({ TimersAll: 6 })), [], 'a keepalive probe per idle connection comes and goes');
    assert.deepEqual(resourceGrowth(start, end({ TimersAll: 7 })).map((g) => g.kind), ['TimersAll']);
    assert.deepEqual(resourceGrowth(start, end({ Timeout: 1 })).map((g) => g.kind), ['Timeout']);
    assert.deepEqual(resourceGrowth(start, end({ TCPSocketWrap: 4, TimersAll: 9 }, 4)), [], 'one more connection: its socket, its two timers');
    assert.deepEqual(resourceGrowth(start, end({ TCPSocketWrap: 5 }, 4)).map((g) => g.kind), ['TCPSocketWrap']);
    assert.deepEqual(resourceGrowth(start, end({ PipeWrap: 1 })).map((g) => g.kind), ['PipeWrap']);
  });
});
