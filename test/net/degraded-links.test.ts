/**
 * Degraded links (issue 14, deliver 2; checklist T-X4): four hosts in a mesh, every host's link shaped with a delay of
 * 50 ± 10 ms each way (a round trip of 100 ± 20 ms: a path crosses two shaped ports, one per direction), 1 % loss,
 * 5 % reordering and 1 % duplicates, in segments of one MTU (mtuSizedPackets: the loss hits segments, not 64 KiB GSO
 * super-packets). For a bounded time every node calls every other at once: unary calls of several sizes, server
 * streams, uploads and downloads of a few MiB (sha256 compared: checksums equal), transfers cut short by their
 * deadline, sleeps that outlast their deadline and sleeps whose deadline covers them.
 *
 * Asserted: every call that should succeed succeeds; no false keepalive timeout (keepalive tightened so that a false
 * one would show here: KEEPALIVE); deadlines honoured both ways (DEADLINE_BOUND_MS, and the covered sleeps succeed);
 * no stream left open once the traffic is over.
 * Printed: calls by kind with p50/p99, bytes moved, TCP retransmits and RTOs the hosts' kernels counted, the largest
 * RTO seen, and the packets the switch dropped, duplicated and delayed.
 *
 * Twice: with the mesh's default of one connection per pair, where a small call waits behind whatever bulk bytes the
 * pair's transfers have queued in the connection (so its deadline must cover that wait), and with `dataLane: true`,
 * where bulk has its own connection and a small call's deadline need only cover the link.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { netSkipReason, TestNetwork, type Host } from './fixtures/netns.js';
import { linkSkipReason, shapeAll } from './fixtures/links.js';
import { nodeUrl, startNode, type NetNode, type NodeCallError } from './fixtures/net-node.js';
import { CallLog, congestionControl, largestRto, mib, percentile, switchCounters, tcpCounters, tcpDelta } from './fixtures/net-figures.js';

const skip = netSkipReason() ?? linkSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

const HOSTS = 4;
const DELAY_MS = 50;
const JITTER_MS = 10;
/** Round trips the delay lines make: 80..120 ms (2 x (50 ± 10)), but for reordered packets (5 %), which skip the delay. */
const MAX_RTT_MS = 2 * (DELAY_MS + JITTER_MS);
const MIN_RTT_MS = 2 * (DELAY_MS - JITTER_MS);
const SHAPE = { delayMs: DELAY_MS, jitterMs: JITTER_MS, lossPercent: 1, reorderPercent: 5, duplicatePercent: 1, seed: 14 };

/**
 * Keepalive as tight as the link allows, so that a false timeout would show within the test. Its clock is reset by
 * any byte read (src/session/keepalive.ts): a PING goes out after a whole interval without a byte from the peer, and
 * the connection is declared dead when nothing at all arrives for the timeout after it; a false timeout needs the
 * peer's bytes held back for interval + timeout = 6 s. On this link only TCP's recovery of a lost segment holds them
 * (everything behind it waits): a tail loss probe after ~2 srtt, then RTOs of srtt + max(200 ms, 4 x mdev), doubling
 * at each loss of the retransmission. The RTOs seen here start at 0.3-0.7 s (ss; the largest, backoff included, is
 * printed): a segment lost three times in a row (p = 1e-4 after each RTO, about a hundred RTOs a run) holds the path
 * for up to 0.7 + 1.4 + 2.8 = 4.9 s, plus one trip (60 ms) (one run showed a third RTO pending, ss rto 3 616 ms =
 * 452 ms x 8: 3.2 s of silence already); four times (p = 1e-6) for 10 s, which is a real outage of this link. The
 * rest of the 6 s covers the nodes' scheduling on a shared 2-core machine. (With 1 s + 1.5 s, six hosts ran 25 s of
 * this traffic without a single false timeout: the margin is for the rare chain, not the common case.) Only a stall
 * of the direction towards us silences the peer: a peer that hears nothing pings us within two intervals, which reads
 * as life. What this catches: a PING or its answer held back by gridwire behind bulk data, reads that stop (a credit
 * never sent, a stalled stream), a clock that reads never reset.
 */
const KEEPALIVE = { keepaliveIntervalMs: 1_000, keepaliveTimeoutMs: 5_000 };

/**
 * A call whose deadline passes while the server sleeps fails DEADLINE_EXCEEDED at the caller no later than its deadline
 * plus this: the caller's own timer ends it (src/rpc/deadline.ts), so the network adds nothing, but we allow one round
 * trip with its jitter (the server's own deadline fires one trip after the caller's: its word could race ours) and
 * 200 ms of scheduling (4 nodes, 4 delay lines and other tests share 2 cores: timers fire that late, seen 170 ms).
 * The median must be below half the shortest round trip: the caller does not wait to hear from the server.
 */
const DEADLINE_BOUND_MS = MAX_RTT_MS + 200;
const SLEEP_PAST_DEADLINE = { ms: 2_000, timeoutMs: 300 };

/**
 * Every fourth bulk call (the first included) is a transfer its deadline cuts short: 16 MiB (over a minute on this
 * link) with 1.5 s. It must fail DEADLINE_EXCEEDED within DEADLINE_BOUND_MS of its deadline (measured by the test
 * process: plus the IPC hop, CUT_IPC_MS) and leave no stream open at either end.
 */
const CUT = { bytes: 16 * 2 ** 20, timeoutMs: 1_500 };
const CUT_IPC_MS = 100;

/** Unary payload sizes (each echoed back). */
const ECHO_BYTES = [16, 1024, 16 * 1024, 256 * 1024];
/** Bulk sizes, alternately up and down: a few MiB. */
const BULK_BYTES = [1, 2, 3].map((n) => n * 2 ** 20);
const TICKS = { count: 32, bytes: 4096 };
/**
 * Deadlines of the small calls expected to succeed (echo, ticks): far beyond their work, since on one connection per
 * pair they wait behind the pair's bulk bytes (above 3 s seen); they are there to fail the test, not to be measured.
 */
const SMALL_TIMEOUT_MS = 20_000;
/** 3 MiB at the slowest transfer rate seen on this link (~200 KiB/s with every pair busy: 15 s), three times over. */
const BULK_TIMEOUT_MS = 45_000;

interface Transfer {
  bytes: number;
  sha256: string;
  expected: string;
}

/** What the traffic of every pair adds to. */
interface Tally {
  log: CallLog;
  /** Calls that did not end as they should, and why. */
  failures: string[];
  /** Sleeps past their deadline: ms from the deadline to the caller's DEADLINE_EXCEEDED (measured in the node). */
  overshoots: number[];
  /** Transfers cut by their deadline: the same, measured by the test process. */
  cuts: number[];
}

interface Run {
  /** Mesh options besides keepalive. */
  dataLane: boolean;
  /** New calls start for this long; the ones started by then finish. */
  trafficMs: number;
  /** A sleep of 200 ms with this deadline must succeed. */
  covered: { ms: number; timeoutMs: number };
}

const nameOf = (host: Host): string => `h${host.index}`;

/** One caller's traffic to one peer until `endAt`: small calls in one loop, bulk in another, both at once. */
async function traffic(from: NetNode, peer: string, seed: number, endAt: number, run: Run, tally: Tally): Promise<void> {
  const { log, failures } = tally;
  const call = async <T>(kind: string, cmd: string, args: Record<string, unknown>, timeoutMs: number, check: (result: T) => number): Promise<void> => {
    const started = performance.now();
    try {
      const bytes = check(await from.request<T>(cmd, { peer, timeoutMs, ...args }, timeoutMs + 15_000));
      log.record(kind, performance.now() - started, bytes);
    } catch (error) {
      log.fail(kind);
      failures.push(`${from.name}->${peer} ${kind}: ${(error as Error).message}`);
    }
  };
  const small = async (): Promise<void> => {
    for (let round = 0; performance.now() < endAt; round++) {
      const bytes = ECHO_BYTES[round % ECHO_BYTES.length]!;
      await call<{ node: string }>(`unary echo ${bytes < 1024 ? `${bytes} B` : `${bytes / 1024} KiB`}`, 'echo', { bytes }, SMALL_TIMEOUT_MS, (r) => (assert.equal(r.node, peer), 2 * bytes));
      await call<{ received: number }>(`server stream ${TICKS.count} x 4 KiB`, 'ticks', TICKS, SMALL_TIMEOUT_MS, (r) => (assert.equal(r.received, TICKS.count), TICKS.count * TICKS.bytes));
      if (round % 2 === 0) {
        await call<{ code: string; ms: number }>(`sleep ${run.covered.ms} ms, deadline ${run.covered.timeoutMs / 1000} s`, 'sleepOutcome', run.covered, run.covered.timeoutMs, (r) => {
          assert.equal(r.code, 'OK', `a sleep of ${run.covered.ms} ms with a deadline of ${run.covered.timeoutMs} ms ended ${r.code} after ${r.ms.toFixed(0)} ms`);
          return 0;
        });
      } else {
        await call<{ code: string; ms: number }>(`sleep ${SLEEP_PAST_DEADLINE.ms / 1000} s, deadline ${SLEEP_PAST_DEADLINE.timeoutMs} ms`, 'sleepOutcome', SLEEP_PAST_DEADLINE, SMALL_TIMEOUT_MS, (r) => {
          assert.equal(r.code, 'DEADLINE_EXCEEDED', `a sleep of ${SLEEP_PAST_DEADLINE.ms} ms with a deadline of ${SLEEP_PAST_DEADLINE.timeoutMs} ms ended ${r.code}`);
          tally.overshoots.push(r.ms - SLEEP_PAST_DEADLINE.timeoutMs);
          return 0;
        });
      }
    }
  };
  const bulk = async (): Promise<void> => {
    for (let round = 0; performance.now() < endAt; round++) {
      if (round % 4 === 0) {
        // first, then after each three transfers: half the pairs cut a download, half an upload
        const cmd = (seed / 1_000 + round / 4) % 2 === 0 ? 'download' : 'upload';
        const started = performance.now();
        const code = await from.request(cmd, { peer, ...CUT, seed }, CUT.timeoutMs + 15_000).then(() => 'OK', (error: NodeCallError) => error.code);
        const ms = performance.now() - started;
        if (code !== 'DEADLINE_EXCEEDED') {
          log.fail(`${cmd} cut by its deadline`);
          failures.push(`${from.name}->${peer} ${cmd} of ${CUT.bytes} bytes with a deadline of ${CUT.timeoutMs} ms ended ${code} after ${ms.toFixed(0)} ms`);
        } else {
          log.record(`${cmd} cut by its deadline`, ms);
          tally.cuts.push(ms - CUT.timeoutMs);
        }
        continue;
      }
      const bytes = BULK_BYTES[(round % 4) - 1]!;
      const cmd = round % 2 === 0 ? 'upload' : 'download';
      await call<Transfer>(`${cmd} ${bytes / 2 ** 20} MiB`, cmd, { bytes, seed: seed + round }, BULK_TIMEOUT_MS, (r) => {
        assert.equal(r.bytes, bytes, 'bytes');
        assert.equal(r.sha256, r.expected, 'checksums equal');
        return r.bytes;
      });
    }
  };
  await Promise.all([small(), bulk()]);
}

/** Builds the shaped mesh, runs the traffic, prints the figures, and asserts. */
async function degradedMesh(t: TestContext, run: Run): Promise<void> {
  const network = await TestNetwork.create(t, { hosts: HOSTS });
  const names = network.hosts.map(nameOf);
  const nodes = await Promise.all(
    network.hosts.map((host) => {
      const peers = Object.fromEntries(network.hosts.filter((other) => other !== host).map((other) => [nameOf(other), nodeUrl(other)]));
      return startNode(network, host, { name: nameOf(host), peers, options: { ...KEEPALIVE, dataLane: run.dataLane } });
    }),
  );
  // the mesh is up before the links degrade: what follows is about traffic, not about dialing through loss
  await Promise.all(nodes.flatMap((node) => names.filter((peer) => peer !== node.name).map((peer) => node.request('echo', { peer, waitForReady: true, timeoutMs: 10_000 }))));
  await network.mtuSizedPackets();
  await shapeAll(network, SHAPE);
  const eventsFrom = nodes.map((node) => node.events.length);
  const tcpBefore = await Promise.all(network.hosts.map((host) => tcpCounters(host.ns)));

  const tally: Tally = { log: new CallLog(), failures: [], overshoots: [], cuts: [] };
  const { log, overshoots, cuts } = tally;
  const started = performance.now();
  const endAt = started + run.trafficMs;
  let rto = 0;
  const sampling = (async () => {
    // the RTOs the hosts' TCP runs with, every 2 s while the traffic lasts (what the keepalive timeout must outlast)
    while (performance.now() < endAt) {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      for (const host of network.hosts) rto = Math.max(rto, await largestRto(host.ns));
    }
  })();
  await Promise.all(nodes.flatMap((node, i) => names.filter((peer) => peer !== node.name).map((peer, k) => traffic(node, peer, 1_000 * (10 * i + k), endAt, run, tally))));
  await sampling;
  const elapsed = performance.now() - started;
  // what the cut transfers and the sleeps past their deadline left behind: every stream ends at both ends
  let open: number[] = [];
  for (const until = performance.now() + 5_000; performance.now() < until; ) {
    open = (await Promise.all(nodes.map((node) => node.request<{ totals: { streamsOpen: number } }>('stats')))).map((s) => s.totals.streamsOpen);
    if (open.every((n) => n === 0)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const tcp = tcpDelta(tcpBefore, await Promise.all(network.hosts.map((host) => tcpCounters(host.ns))));
  const shaped = await switchCounters(network);
  const stats = await Promise.all(nodes.map((node) => node.request<{ totals: { bytesOut: number; creditStalls: { count: number; blockedMs: number } } }>('stats')));
  const written = stats.reduce((sum, s) => sum + s.totals.bytesOut, 0);

  t.diagnostic(`${run.dataLane ? 'data lane' : 'one connection per pair'}: ${log.calls} calls in ${(elapsed / 1000).toFixed(1)} s (${run.trafficMs / 1000} s of new calls), ${mib(log.bytes)} MiB of payload, ${mib(written)} MiB written by the nodes' connections`);
  for (const line of log.lines()) t.diagnostic(`  ${line}`);
  t.diagnostic(`  deadline exceeded: ${overshoots.length} sleeps, the caller's error at deadline + p50 ${percentile(overshoots, 50).toFixed(1)} / p99 ${percentile(overshoots, 99).toFixed(1)} / max ${Math.max(...overshoots).toFixed(1)} ms; ${cuts.length} transfers cut, at deadline + p50 ${percentile(cuts, 50).toFixed(0)} / max ${Math.max(...cuts).toFixed(0)} ms (IPC included)`);
  t.diagnostic(`  TCP (${await congestionControl(network.hosts[0]!.ns)}, all hosts): ${tcp.OutSegs} segments sent, ${tcp.RetransSegs} retransmitted (${((100 * tcp.RetransSegs) / Math.max(1, tcp.OutSegs)).toFixed(1)} %), ${tcp.TCPTimeouts} RTOs, ${tcp.TCPLossProbes} loss probes, ${tcp.TCPDSACKRecv} D-SACKs, ${tcp.TCPToZeroWindowAdv} zero windows advertised, ${tcp.TCPWinProbe} zero-window probes; largest RTO seen ${rto} ms`);
  t.diagnostic(`  switch: ${shaped.delayed} packets through the delay lines, ${shaped.dropped} dropped, ${shaped.duplicated} duplicated`);
  t.diagnostic(`  credit stalls: ${stats.map((s, i) => `${names[i]} ${s.totals.creditStalls.count} (${(s.totals.creditStalls.blockedMs / 1000).toFixed(1)} s)`).join(', ')}`);

  const problems = [...tally.failures];
  for (const node of nodes) for (const e of node.logs(/keepalive|unresponsive/i)) problems.push(`${node.name} logged: ${String(e.message)}`);
  // a peer going anything but ready is a loss; 'ready' alone is not (with dataLane a pair's data connection may first
  // come up after the links are shaped: the set-up waits for the control lane only; a CI run saw exactly that)
  for (const [i, node] of nodes.entries()) for (const e of node.events.slice(eventsFrom[i]).filter((e) => e.event === 'peer' && e.state !== 'ready')) problems.push(`${node.name}: peer ${String(e.peer)} went ${String(e.state)}`);
  if (overshoots.length < names.length * (names.length - 1)) problems.push(`only ${overshoots.length} deadlines passed: every ordered pair must see one`);
  const worst = Math.max(...overshoots);
  if (worst > DEADLINE_BOUND_MS) problems.push(`DEADLINE_EXCEEDED ${worst.toFixed(0)} ms after the deadline (bound ${DEADLINE_BOUND_MS} ms)`);
  if (cuts.length === 0) problems.push('no transfer was cut by its deadline');
  const worstCut = Math.max(...cuts);
  if (worstCut > DEADLINE_BOUND_MS + CUT_IPC_MS) problems.push(`a transfer cut by its deadline failed ${worstCut.toFixed(0)} ms after it (bound ${DEADLINE_BOUND_MS + CUT_IPC_MS} ms)`);
  if (open.some((n) => n > 0)) problems.push(`streams still open 5 s after the traffic: ${open.join(', ')} (by node)`);
  if (percentile(overshoots, 50) >= MIN_RTT_MS / 2) problems.push(`DEADLINE_EXCEEDED at deadline + ${percentile(overshoots, 50).toFixed(0)} ms at the median: the caller waits for the server`);
  if (!(shaped.dropped > 0 && shaped.duplicated > 0 && tcp.RetransSegs > 0)) problems.push('the links did not lose and duplicate packets, or TCP did not retransmit: not a degraded link');
  // a connection that fails keeps failing calls while it redials: the first few problems say why
  const shown = problems.length > 20 ? [...problems.slice(0, 20), `... and ${problems.length - 20} more`] : problems;
  assert.deepEqual(shown, [], 'every call succeeds, no keepalive timeout, no peer down, deadlines honoured');
}

void describe('degraded links', { skip, timeout: 90_000 }, () => {
  void it(`T-X4 ${HOSTS} hosts, one connection per pair, over links of 50 ± 10 ms each way (RTT 100 ± 20 ms), 1 % loss, 5 % reordering, 1 % duplicates: every call of mixed traffic from every node succeeds with checksums equal, no false keepalive timeout (interval 1 s, timeout 5 s), deadlines honoured`, async (t) => {
    // a 200 ms sleep's deadline must cover the wait behind the pair's bulk bytes queued ahead of it in the one
    // connection (up to a window of each transfer: seen above 3 s on this link), besides the link's own recovery
    await degradedMesh(t, { dataLane: false, trafficMs: 20_000, covered: { ms: 200, timeoutMs: 10_000 } });
  });

  void it(`T-X4 ${HOSTS} hosts with a data lane, over the same links: every call succeeds, no false keepalive timeout, and a 200 ms call whose 3 s deadline covers the link succeeds`, async (t) => {
    // 3 s: the sleep, a round trip (120 ms), and a segment of the request or the answer lost twice (two RTOs, up to
    // 0.7 + 1.4 s); bulk bytes are on the data connection, not ahead of it
    await degradedMesh(t, { dataLane: true, trafficMs: 15_000, covered: { ms: 200, timeoutMs: 3_000 } });
  });
});
