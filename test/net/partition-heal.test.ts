/**
 * Issue 14, deliver 4 (checklist T-X5, T-X2): a mesh of four hosts; one of them (d) is cut off at the switch for 30 s
 * (every packet to and from it dropped: silence, not a reset), then healed.
 *
 *   - fail-fast calls to and from d get UNAVAILABLE: those made before the loss is detected when keepalive declares
 *     the connection dead, those made after at once; never a success, never a hang to their deadline;
 *   - calls between a, b and c go on as if nothing happened;
 *   - `waitForReady` calls to and from d started during the partition complete after the heal, within their deadline;
 *   - after the heal every pair has one control connection again within a bound derived from the reconnect backoff,
 *     and the redials are spread by its jitter (printed).
 *
 * Keepalive is tightened to 2 000 + 3 000 ms so detection falls well inside the 30 s. A dead peer is detected between
 * interval + timeout and 2 x interval + timeout after the last byte read (docs/OPTIONS.md): 5-7 s here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netSkipReason, TestNetwork } from './fixtures/netns.js';
import { nodeUrl, startNode, type NetNode } from './fixtures/net-node.js';
import { dialsTo } from '../../src/mesh/mesh.js';
import { everyMs, FaultClock, fmt, formatLaneEvents, laneEvents, sleep, summarize, timedRequest, type CallOutcome } from './fixtures/fault-timeline.js';

const skip = netSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

const KEEPALIVE_INTERVAL_MS = 2_000;
const KEEPALIVE_TIMEOUT_MS = 3_000;
/** The latest a silent peer is declared dead, from its last byte: 2 x interval + timeout (docs/OPTIONS.md). */
const DETECTION_BOUND_MS = 2 * KEEPALIVE_INTERVAL_MS + KEEPALIVE_TIMEOUT_MS;
const PARTITION_MS = 30_000;
/** Timer, IPC and iptables slack on a loaded 2-core machine. */
const SLACK_MS = 1_000;
/** A fail-fast call made once the loss is known fails at once: this much for the IPC round trips on a loaded machine (it used to wait up to connectTimeoutMs, 10 s). */
const AT_ONCE_MS = 750;

/** The mesh's defaults (src/mesh/mesh.ts, src/channel/backoff.ts), which this test leaves alone. */
const CONNECT_TIMEOUT_MS = 10_000;
const RECONNECT = { initialDelayMs: 250, maxDelayMs: 30_000, lossSpreadMs: 2_000 };
const FALLBACK_DIAL_AFTER_MS = 3_000;
/**
 * The reconvergence bound, from the backoff. Each redial of the silent host lasts a whole connectTimeoutMs (its SYNs
 * are dropped, nothing refuses them) and the first starts after the loss is detected, keepaliveTimeoutMs after the
 * partition at the earliest, so at most MAX_FAILED_DIALS dials start, and fail, before the heal; the longest cap the
 * backoff can then draw from is max(lossSpreadMs / 2, initialDelayMs x 2^(failures - 1)) (Backoff.afterFailure).
 * At the heal the designated dialer of each pair is either dialing (the dial ends by CONNECT_TIMEOUT_MS: connected at a
 * SYN retransmission, or timed out) or in backoff (at most the cap), then dials once more, which succeeds: bound =
 * connect timeout + largest cap + a handshake (SLACK_MS).
 */
const MAX_FAILED_DIALS = Math.floor((PARTITION_MS - KEEPALIVE_TIMEOUT_MS) / CONNECT_TIMEOUT_MS) + 1;
const LARGEST_CAP_MS = Math.min(RECONNECT.maxDelayMs, Math.max(RECONNECT.lossSpreadMs / 2, RECONNECT.initialDelayMs * 2 ** (MAX_FAILED_DIALS - 1)));
const RECONVERGE_BOUND_MS = CONNECT_TIMEOUT_MS + LARGEST_CAP_MS + SLACK_MS;

const OPTIONS = { keepaliveIntervalMs: KEEPALIVE_INTERVAL_MS, keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS };

void describe('partition and heal (T-X5)', { skip, timeout: 90_000 }, () => {
  void it('a host cut off for 30 s: fail-fast calls get UNAVAILABLE by the keepalive bound, waitForReady calls complete after the heal, the mesh reconverges with jitter', async (t) => {
    const network = await TestNetwork.create(t, { hosts: 4 });
    const names = ['a', 'b', 'c', 'd'] as const;
    const urls = Object.fromEntries(names.map((name, i) => [name, nodeUrl(network.hosts[i]!)]));
    const nodes = await Promise.all(
      names.map((name, i) =>
        startNode(network, network.hosts[i]!, { name, peers: Object.fromEntries(names.filter((n) => n !== name).map((n) => [n, urls[n]!])), options: OPTIONS }),
      ),
    );
    const [a, b, c, d] = nodes as [NetNode, NetNode, NetNode, NetNode];
    // every pair connected before the fault
    await Promise.all(nodes.flatMap((from) => names.filter((n) => n !== from.name).map((peer) => from.request('echo', { peer, waitForReady: true, timeoutMs: 20_000 }))));

    const clock = new FaultClock();
    let converged = false;
    // bystanders: the pairs without d call each other every 250 ms throughout, fail-fast, 2 s deadline
    const bystanders = Promise.all(
      ([[a, 'b'], [b, 'c'], [c, 'a'], [b, 'a']] as const).map(([from, peer]) => everyMs(250, () => converged, () => timedRequest(clock, from, 'echo', { peer, timeoutMs: 2_000 }))),
    );
    await sleep(500);
    await network.partition(network.hosts[3]!);
    clock.mark();
    console.log(`# partitioned d at t0; keepalive ${KEEPALIVE_INTERVAL_MS} + ${KEEPALIVE_TIMEOUT_MS} ms: a silent peer is declared dead by +${DETECTION_BOUND_MS} ms after its last byte`);

    // fail-fast calls to and from d every 500 ms while it is cut off, with a deadline longer than the partition
    const failFast = Promise.all(
      ([[a, 'd'], [b, 'd'], [c, 'd'], [d, 'a'], [d, 'c']] as const).map(([from, peer]) =>
        everyMs(500, () => clock.now() > PARTITION_MS - 500, () => timedRequest(clock, from, 'echo', { peer, timeoutMs: 40_000 })),
      ),
    );
    // waitForReady calls started during the partition, once the loss is known (+10 s) and later (+20 s); their deadline
    // covers the rest of the partition and the reconnection (a call started before the loss is known is sent on the
    // dead connection and fails with it: waitForReady waits for a connection, it does not resend)
    const waitForReady: Promise<CallOutcome & { deadline: number }>[] = [];
    const startWaiting = (): void => {
      const timeoutMs = PARTITION_MS - clock.now() + RECONVERGE_BOUND_MS + SLACK_MS;
      for (const [from, peer] of [[a, 'd'], [b, 'd'], [c, 'd'], [d, 'b']] as const) {
        const start = clock.now();
        waitForReady.push(timedRequest(clock, from, 'echo', { peer, waitForReady: true, timeoutMs }, timeoutMs + 10_000).then((o) => ({ ...o, deadline: start + timeoutMs })));
      }
    };
    await sleep(10_000);
    startWaiting();
    await sleep(10_000);
    startWaiting();
    await sleep(PARTITION_MS - clock.now());
    const healAt = clock.now(); // when the heal starts: the first rule removed may already let packets through
    await network.heal(network.hosts[3]!);

    // reconverged: every node has every peer ready on exactly one connection
    let convergedAt = Number.NaN;
    while (clock.now() < healAt + RECONVERGE_BOUND_MS + 10_000) {
      const all = await Promise.all(nodes.map((node) => node.request<{ peers: Record<string, { state: string; connections: number }> }>('stats')));
      if (all.every(({ peers }) => Object.values(peers).every((p) => p.state === 'ready' && p.connections === 1))) {
        convergedAt = clock.now();
        break;
      }
      await sleep(100);
    }
    // and calls work across every pair, fail-fast
    const after = await Promise.all(nodes.flatMap((from) => names.filter((n) => n !== from.name).map((peer) => timedRequest(clock, from, 'echo', { peer, timeoutMs: 2_000 }))));
    converged = true;
    const [bystanderOutcomes, failFastOutcomes, waitOutcomes] = await Promise.all([bystanders, failFast.then((o) => o.flat()), Promise.all(waitForReady)]);

    // the figures
    const detectedAt = (node: NetNode, peer: string): number => clock.of(node.logs(new RegExp(`^peer ${peer} \\(control\\): connection lost: the peer is unresponsive`)).find((e) => clock.of(e.at) > 0)?.at);
    const detections = [...[a, b, c].map((n) => [n, 'd'] as const), ...(['a', 'b', 'c'] as const).map((p) => [d, p] as const)].map(([node, peer]) => ({ pair: `${node.name}->${peer}`, at: detectedAt(node, peer) }));
    console.log(`# keepalive detection (ms after the partition): ${detections.map((x) => `${x.pair} ${fmt(x.at).trim()}`).join(', ')}`);
    const late = failFastOutcomes.map((o) => {
      const detected = detectedAt(o.from === 'd' ? d : nodes[names.indexOf(o.from as 'a')]!, o.from === 'd' ? o.to : 'd');
      return { ...o, detected, lateMs: o.end - Math.max(o.start, detected) };
    });
    const beforeDetection = late.filter((o) => o.start < o.detected);
    const afterDetection = late.filter((o) => o.start >= o.detected);
    const maxAfter = Math.max(...afterDetection.map((o) => o.end - o.start));
    console.log(`# fail-fast calls to/from d: ${summarize(failFastOutcomes)}; ${beforeDetection.length} made before the loss was detected ended ${Math.max(...beforeDetection.map((o) => o.lateMs)).toFixed(0)} ms after it at most; ${afterDetection.length} made after it took ${maxAfter.toFixed(0)} ms at most`);
    const bystanderMs = bystanderOutcomes.flat().map((o) => o.end - o.start).sort((x, y) => x - y);
    console.log(`# bystander calls a<->b, b<->c, c->a: ${summarize(bystanderOutcomes.flat())}; p50 ${bystanderMs[bystanderMs.length >> 1]!.toFixed(0)} ms, max ${bystanderMs.at(-1)!.toFixed(0)} ms`);
    console.log(`# waitForReady calls (started -> ended ms, deadline): ${waitOutcomes.map((o) => `${o.from}->${o.to} ${fmt(o.start).trim()} -> ${fmt(o.end).trim()} ${o.code} (${fmt(o.deadline).trim()})`).join('; ')}`);
    console.log(`# healed at ${fmt(healAt).trim()} ms; reconverged (every pair ready on one connection) ${Math.round(convergedAt - healAt)} ms later (bound ${RECONVERGE_BOUND_MS} ms = connectTimeoutMs ${CONNECT_TIMEOUT_MS} + largest backoff cap ${LARGEST_CAP_MS} + ${SLACK_MS}); calls after: ${summarize(after)}`);
    console.log('# redials (lane events of the links to and from d, ms after the partition; backoff N ms: the drawn delay):');
    for (const node of nodes) for (const line of formatLaneEvents(clock, node, node === d ? undefined : 'd', 0)) console.log(line);

    // detection within the keepalive bound, on both sides of every pair with d
    for (const { pair, at } of detections) assert.ok(at > 0 && at <= DETECTION_BOUND_MS + SLACK_MS, `${pair}: the silent peer declared dead at ${fmt(at)} ms (bound ${DETECTION_BOUND_MS} + ${SLACK_MS})`);
    // every fail-fast call failed UNAVAILABLE: those made before the detection at it, the others at once
    for (const o of late) {
      assert.equal(o.code, 'UNAVAILABLE', `fail-fast ${o.from}->${o.to} started ${fmt(o.start)}: ${o.code} ${o.message ?? ''}`);
      assert.ok(o.lateMs <= AT_ONCE_MS, `fail-fast ${o.from}->${o.to} started ${fmt(o.start)}, detected ${fmt(o.detected)}: ended ${fmt(o.end)}`);
    }
    assert.ok(beforeDetection.length > 0 && afterDetection.length > 20, 'calls both before and after the detection');
    // the other pairs did not notice
    for (const o of bystanderOutcomes.flat()) assert.equal(o.code, 'OK', `bystander ${o.from}->${o.to} at ${fmt(o.start)}: ${o.code} ${o.message ?? ''}`);
    // waitForReady calls completed after the heal, within their deadline
    for (const o of waitOutcomes) {
      assert.equal(o.code, 'OK', `waitForReady ${o.from}->${o.to} started ${fmt(o.start)}: ${o.code} ${o.message ?? ''}`);
      assert.ok(o.end >= healAt && o.end <= o.deadline, `waitForReady ${o.from}->${o.to} ended ${fmt(o.end)} (heal ${fmt(healAt)}, deadline ${fmt(o.deadline)})`);
    }
    // the mesh reconverged within the bound the backoff gives
    assert.ok(convergedAt - healAt <= RECONVERGE_BOUND_MS, `reconverged ${Math.round(convergedAt - healAt)} ms after the heal (bound ${RECONVERGE_BOUND_MS})`);
    for (const o of after) assert.equal(o.code, 'OK', `after the heal ${o.from}->${o.to}: ${o.code} ${o.message ?? ''}`);
    // backoff at work: every delay within its cap; the first redials after the loss spread by the jitter, not in step
    const links = [...[a, b, c].map((n) => [n, 'd'] as const), ...(['a', 'b', 'c'] as const).map((p) => [d, p] as const)];
    const firstRedials: number[] = [];
    for (const [node, peer] of links) {
      const events = laneEvents(clock, node, peer, 0).filter((e) => e.t < healAt);
      const backoffs = events.filter((e) => e.state === 'backoff').map((e) => e.delayMs as number);
      const fallback = dialsTo(node.name, peer) ? 0 : FALLBACK_DIAL_AFTER_MS;
      assert.ok(backoffs.length >= 1 && backoffs[0]! <= RECONNECT.lossSpreadMs + fallback, `${node.name}->${peer}: first delay after the loss ${backoffs[0]} ms (0..${RECONNECT.lossSpreadMs} + ${fallback})`);
      for (const delay of backoffs.slice(1)) assert.ok(delay <= LARGEST_CAP_MS + fallback, `${node.name}->${peer}: delay ${delay} ms above the largest cap ${LARGEST_CAP_MS} + ${fallback}`);
      // no redial storm: each failed dial of a silent host lasts connectTimeoutMs
      const dials = events.filter((e) => e.state === 'connecting').length;
      assert.ok(dials <= MAX_FAILED_DIALS + 1, `${node.name}->${peer}: ${dials} dials during the partition (at most ${MAX_FAILED_DIALS + 1})`);
      const first = events.find((e) => e.state === 'connecting');
      if (first !== undefined) firstRedials.push(first.t);
    }
    const spread = Math.max(...firstRedials) - Math.min(...firstRedials);
    console.log(`# first redials after the loss: ${firstRedials.map((x) => fmt(x).trim()).join(', ')} ms (spread ${spread.toFixed(0)} ms)`);
    assert.ok(firstRedials.length >= 3 && spread >= 200, `the first redials are spread by the jitter (spread ${spread.toFixed(0)} ms over ${firstRedials.length} links)`);
  });
});
