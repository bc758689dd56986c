/**
 * Issue 14, deliver 5 (checklist T-X1, T-X2, T-S6): a host crashes (SIGKILL) or freezes (SIGSTOP) in the middle of bulk
 * transfers. Three hosts in a mesh; a sends b a 64 MiB upload and b downloads 64 MiB from a, both over the link
 * towards b, shaped to 100 Mbit/s so they take ~11 s; the fault comes 2 s in.
 *
 *   - a killed: b's sink handler and b's download both ERROR (never a clean end with a short body), at once;
 *   - b killed: a's upload fails and its download handler is stopped with an error, at once;
 *   - a frozen: b detects the silent peer within the keepalive bound (measured from the freeze), its sink and
 *     download fail UNAVAILABLE; a thawed fails its own side of the calls, and the pair reconnects;
 *   - b (the receiver) frozen: a, the sender of both, does not hang: its upload call and its download handler fail
 *     within the keepalive bound. Keepalive is what applies, not writeStallTimeoutMs: keepalive counts bytes READ, and
 *     a frozen peer sends none (no CREDIT, no PING ACK), so it fires 5-7 s after the freeze; the write-stall watch
 *     starts only once the socket refuses our writes (the sender may run out of stream window first) and then waits
 *     60 s by default: it is for a peer that stays alive, sending, but never reads;
 *   - throughout, the two hosts not involved call each other, and every call succeeds.
 *
 * Keepalive 2 000 + 3 000 ms: a silent peer is declared dead between 5 and 7 s after its last byte (docs/OPTIONS.md).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { netSkipReason, TestNetwork, type Host } from './fixtures/netns.js';
import { linkSkipReason, shapeLink } from './fixtures/links.js';
import { nodeUrl, startNode, type NetNode, type NodeEvent } from './fixtures/net-node.js';
import type { HostNodeConfig } from './fixtures/host-node.js';
import { everyMs, FaultClock, fmt, formatLaneEvents, sleep, summarize, timedRequest, type CallOutcome } from './fixtures/fault-timeline.js';

const skip = netSkipReason() ?? linkSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

const KEEPALIVE_INTERVAL_MS = 2_000;
const KEEPALIVE_TIMEOUT_MS = 3_000;
const DETECTION_BOUND_MS = 2 * KEEPALIVE_INTERVAL_MS + KEEPALIVE_TIMEOUT_MS;
/** Timer and IPC slack on a loaded 2-core machine; also covers what the kernel buffered before a freeze draining. */
const SLACK_MS = 1_000;
/** A crashed host's kernel closes its sockets at once: the peer's calls fail within this (T-X1: 1 s). */
const CRASH_BOUND_MS = 1_000;
const BULK_BYTES = 64 * 2 ** 20;
const RATE_MBIT = 100;
const FAULT_AFTER_MS = 2_000;
/** A frozen host thawed: its pair reconnects within connectTimeoutMs (a dial to it hangs in its handshake until the thaw) + the backoff's largest first delay (lossSpreadMs + fallbackDialAfterMs). */
const RECONNECT_BOUND_MS = 10_000 + 2_000 + 3_000 + SLACK_MS;

const OPTIONS = { keepaliveIntervalMs: KEEPALIVE_INTERVAL_MS, keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS };

interface BulkResult {
  code: string;
  message?: string;
  bytes?: number;
  sha256?: string;
  expected?: string;
  at: number;
}
type BulkEvent = NodeEvent & { method: string; label: string; outcome: 'end' | 'error'; bytes: number; code?: string; message?: string };

interface Mesh3 {
  network: TestNetwork;
  nodes: Record<'a' | 'b' | 'c', NetNode>;
  configs: Record<'a' | 'b' | 'c', Omit<HostNodeConfig, 'listen'>>;
  hosts: Record<'a' | 'b' | 'c', Host>;
}

/** Three nodes, every pair connected, the link towards b shaped to RATE_MBIT. */
async function mesh3(t: TestContext): Promise<Mesh3> {
  const network = await TestNetwork.create(t, { hosts: 3 });
  const names = ['a', 'b', 'c'] as const;
  const hosts = { a: network.host(1), b: network.host(2), c: network.host(3) };
  const configs = Object.fromEntries(
    names.map((name) => [name, { name, peers: Object.fromEntries(names.filter((n) => n !== name).map((n) => [n, nodeUrl(hosts[n])])), options: OPTIONS }]),
  ) as Mesh3['configs'];
  const started = await Promise.all(names.map((name) => startNode(network, hosts[name], configs[name])));
  const nodes = { a: started[0]!, b: started[1]!, c: started[2]! };
  await Promise.all(started.flatMap((from) => names.filter((n) => n !== from.name).map((peer) => from.request('echo', { peer, waitForReady: true, timeoutMs: 20_000 }))));
  await shapeLink(network, hosts.b, { rateMbit: RATE_MBIT });
  return { network, nodes, configs, hosts };
}

/** a uploads to b and b downloads from a: both carry a's bytes to b. Results never reject (a's may: NODE_EXITED). */
function startTransfers(m: Mesh3): { upload: Promise<BulkResult>; download: Promise<BulkResult> } {
  const args = { bytes: BULK_BYTES, timeoutMs: 120_000 };
  const exited = (error: Error): BulkResult => ({ code: (error as { code?: string }).code ?? 'ERROR', message: error.message, at: Date.now() });
  return {
    upload: m.nodes.a.request<BulkResult>('uploadObserved', { peer: 'b', seed: 1, ...args }, 130_000).catch(exited),
    download: m.nodes.b.request<BulkResult>('downloadObserved', { peer: 'a', seed: 2, ...args }, 130_000).catch(exited),
  };
}

/** The node's first `bulk` event for `method`, once it comes. */
async function bulkEvent(node: NetNode, method: string, timeoutMs: number): Promise<BulkEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const event = node.events.find((e) => e.event === 'bulk' && e.method === method);
    if (event !== undefined) return event as BulkEvent;
    if (Date.now() > deadline) throw new Error(`node ${node.name}: no ${method} outcome in ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Calls between two hosts not involved, every 250 ms, until stop(). */
function bystanders(clock: FaultClock, x: NetNode, y: NetNode, stop: () => boolean): Promise<CallOutcome[]> {
  return Promise.all([x, y].map((from, i) => everyMs(250, stop, () => timedRequest(clock, from, 'echo', { peer: i === 0 ? y.name : x.name, timeoutMs: 2_000 })))).then((o) => o.flat());
}

/** A receiver's view of a transfer that was cut: an error, with part of the body; never a clean (short) end. */
function assertCut(what: string, outcome: { code?: string; outcome?: string; bytes?: number; message?: string }, expectedCode = 'UNAVAILABLE'): void {
  assert.notEqual(outcome.outcome, 'end', `${what} ended cleanly after ${outcome.bytes} of ${BULK_BYTES} bytes: a silent truncation`);
  assert.notEqual(outcome.code, 'OK', `${what} succeeded: ${JSON.stringify(outcome)}`);
  assert.equal(outcome.code, expectedCode, `${what}: ${outcome.code} ${outcome.message ?? ''}`);
  if (outcome.bytes !== undefined) assert.ok(outcome.bytes > 0 && outcome.bytes < BULK_BYTES, `${what}: cut mid-transfer (${outcome.bytes} bytes)`);
}

function assertAllOk(what: string, outcomes: CallOutcome[]): void {
  assert.ok(outcomes.length > 10, `${what}: ${outcomes.length} calls`);
  for (const o of outcomes) assert.equal(o.code, 'OK', `${what} ${o.from}->${o.to} at ${fmt(o.start)}: ${o.code} ${o.message ?? ''}`);
}

/** Waits until `from` has `peer` ready on one connection and a fail-fast call works; resolves with when (clock). */
async function reconnected(clock: FaultClock, from: NetNode, peer: string, boundMs: number): Promise<number> {
  const deadline = clock.now() + boundMs + 5_000;
  while (clock.now() < deadline) {
    const stats = await from.request<{ peers: Record<string, { state: string; connections: number }> }>('stats');
    if (stats.peers[peer]?.state === 'ready' && stats.peers[peer].connections === 1) {
      const at = clock.now();
      const call = await timedRequest(clock, from, 'echo', { peer, timeoutMs: 2_000 });
      if (call.code === 'OK') return at;
    }
    await sleep(100);
  }
  return Number.NaN;
}

const mib = (bytes: number | undefined): string => `${((bytes ?? Number.NaN) / 2 ** 20).toFixed(1)} MiB`;

void describe('crash and freeze mid-bulk (T-X1, T-X2, T-S6)', { skip, timeout: 90_000 }, () => {
  void it('the sender is killed (SIGKILL): the receiver\'s upload handler and download both error at once, never a clean end; b and c keep working; a restarted rejoins', async (t) => {
    const m = await mesh3(t);
    const clock = new FaultClock();
    let done = false;
    const calm = bystanders(clock, m.nodes.b, m.nodes.c, () => done);
    const { upload, download } = startTransfers(m);
    await sleep(FAULT_AFTER_MS);
    clock.mark();
    m.nodes.a.kill('SIGKILL');
    const [sink, got] = await Promise.all([bulkEvent(m.nodes.b, 'sinkObserved', 10_000), download]);
    await upload;
    const sinkAt = clock.of(sink.at);
    const downloadAt = clock.of(got.at);
    console.log(`# kill -9 a at t0, ${FAULT_AFTER_MS} ms into the transfers: b's upload handler saw ${sink.outcome} ${sink.code ?? ''} at ${fmt(sinkAt).trim()} ms after ${mib(sink.bytes)} (${sink.message ?? ''}); b's download ${got.code} at ${fmt(downloadAt).trim()} ms after ${mib(got.bytes)} (${got.message ?? ''})`);
    assertCut("b's upload handler (sinkObserved)", sink);
    assertCut("b's download", got);
    assert.ok(sinkAt <= CRASH_BOUND_MS + SLACK_MS && downloadAt <= CRASH_BOUND_MS + SLACK_MS, `the crash seen at ${sinkAt} / ${downloadAt} ms (bound ${CRASH_BOUND_MS} + ${SLACK_MS})`);

    // a comes back on the same address: the mesh takes it in again
    const restartedAt = clock.now();
    m.nodes.a = await startNode(m.network, m.hosts.a, m.configs.a);
    const [ba, ca] = await Promise.all([reconnected(clock, m.nodes.b, 'a', RECONNECT_BOUND_MS), reconnected(clock, m.nodes.c, 'a', RECONNECT_BOUND_MS)]);
    done = true;
    const calls = await calm;
    console.log(`# a restarted at ${fmt(restartedAt).trim()} ms; b and c have it ready again at ${fmt(ba).trim()} / ${fmt(ca).trim()} ms; b<->c calls meanwhile: ${summarize(calls)}`);
    for (const line of formatLaneEvents(clock, m.nodes.b, 'a', 0)) console.log(line);
    assert.ok(ba - restartedAt <= RECONNECT_BOUND_MS && ca - restartedAt <= RECONNECT_BOUND_MS, 'a rejoined');
    assertAllOk('b<->c during the crash', calls);
  });

  void it('the receiver is killed (SIGKILL): the sender\'s upload fails and its download handler stops at once; a and c keep working', async (t) => {
    const m = await mesh3(t);
    const clock = new FaultClock();
    let done = false;
    const calm = bystanders(clock, m.nodes.a, m.nodes.c, () => done);
    const { upload, download } = startTransfers(m);
    await sleep(FAULT_AFTER_MS);
    clock.mark();
    m.nodes.b.kill('SIGKILL');
    const [sent, source] = await Promise.all([upload, bulkEvent(m.nodes.a, 'sourceObserved', 10_000)]);
    await download;
    await sleep(500);
    done = true;
    const calls = await calm;
    const sentAt = clock.of(sent.at);
    const sourceAt = clock.of(source.at);
    console.log(`# kill -9 b (the receiver) at t0: a's upload ${sent.code} at ${fmt(sentAt).trim()} ms (${sent.message ?? ''}); a's download handler ${source.outcome} ${source.code ?? ''} at ${fmt(sourceAt).trim()} ms after ${mib(source.bytes)}; a<->c calls: ${summarize(calls)}`);
    assertCut("a's upload (the sender)", sent);
    assertCut("a's download handler (the sender)", source);
    assert.ok(sentAt <= CRASH_BOUND_MS + SLACK_MS && sourceAt <= CRASH_BOUND_MS + SLACK_MS, `the crash seen at ${sentAt} / ${sourceAt} ms (bound ${CRASH_BOUND_MS} + ${SLACK_MS})`);
    assertAllOk('a<->c during the crash', calls);
  });

  void it('the sender is frozen (SIGSTOP): the receiver detects it within the keepalive bound and its transfers fail UNAVAILABLE; thawed, a fails its side and the pair reconnects', async (t) => {
    const m = await mesh3(t);
    const clock = new FaultClock();
    let done = false;
    const calm = bystanders(clock, m.nodes.b, m.nodes.c, () => done);
    const { upload, download } = startTransfers(m);
    await sleep(FAULT_AFTER_MS);
    clock.mark();
    m.nodes.a.freeze();
    let thawed = false;
    t.after(() => (thawed ? undefined : m.nodes.a.thaw()));
    const [sink, got] = await Promise.all([bulkEvent(m.nodes.b, 'sinkObserved', DETECTION_BOUND_MS + 10_000), download]);
    const detected = m.nodes.b.logs(/^peer a \(control\): connection lost: the peer is unresponsive/)[0];
    const sinkAt = clock.of(sink.at);
    const downloadAt = clock.of(got.at);
    console.log(`# SIGSTOP a at t0: b declared a unresponsive at ${fmt(clock.of(detected?.at)).trim()} ms; b's upload handler saw ${sink.outcome} ${sink.code ?? ''} at ${fmt(sinkAt).trim()} ms after ${mib(sink.bytes)}; b's download ${got.code} at ${fmt(downloadAt).trim()} ms after ${mib(got.bytes)} (${got.message ?? ''})`);
    assertCut("b's upload handler (sinkObserved)", sink);
    assertCut("b's download", got);
    assert.ok(detected !== undefined, 'b logged the keepalive timeout');
    for (const [what, at] of [['detection', clock.of(detected.at)], ['upload handler', sinkAt], ['download', downloadAt]] as const) {
      assert.ok(at <= DETECTION_BOUND_MS + SLACK_MS, `${what} at ${at} ms after the freeze (bound ${DETECTION_BOUND_MS} + ${SLACK_MS})`);
    }

    const thawAt = clock.now();
    m.nodes.a.thaw();
    thawed = true;
    const [sent, source, back] = await Promise.all([upload, bulkEvent(m.nodes.a, 'sourceObserved', 10_000), reconnected(clock, m.nodes.b, 'a', RECONNECT_BOUND_MS)]);
    done = true;
    const calls = await calm;
    console.log(`# thawed a at ${fmt(thawAt).trim()} ms: its upload ended ${sent.code} at ${fmt(clock.of(sent.at)).trim()} ms (${sent.message ?? ''}); its download handler ${source.outcome} ${source.code ?? ''} after ${mib(source.bytes)}; a-b ready again at ${fmt(back).trim()} ms (${Math.round(back - thawAt)} ms after the thaw); b<->c calls: ${summarize(calls)}`);
    for (const line of formatLaneEvents(clock, m.nodes.b, 'a', 0)) console.log(line);
    assert.notEqual(sent.code, 'OK', "a's upload cannot have succeeded: b gave up on it");
    assert.equal(source.outcome, 'error', "a's download handler was stopped, not run to its end");
    assert.ok(back - thawAt <= RECONNECT_BOUND_MS, `reconnected ${back - thawAt} ms after the thaw (bound ${RECONNECT_BOUND_MS})`);
    assertAllOk('b<->c during the freeze', calls);
  });

  void it('the receiver is frozen (SIGSTOP): the sender does not hang, its upload call and its download handler fail within the keepalive bound', async (t) => {
    const m = await mesh3(t);
    const clock = new FaultClock();
    let done = false;
    const calm = bystanders(clock, m.nodes.a, m.nodes.c, () => done);
    const { upload, download } = startTransfers(m);
    await sleep(FAULT_AFTER_MS);
    clock.mark();
    m.nodes.b.freeze();
    let thawed = false;
    t.after(() => (thawed ? undefined : m.nodes.b.thaw()));
    const [sent, source] = await Promise.all([upload, bulkEvent(m.nodes.a, 'sourceObserved', DETECTION_BOUND_MS + 10_000)]);
    const detected = m.nodes.a.logs(/^peer b \(control\): connection lost/)[0];
    const sentAt = clock.of(sent.at);
    const sourceAt = clock.of(source.at);
    console.log(`# SIGSTOP b at t0: a lost b at ${fmt(clock.of(detected?.at)).trim()} ms (${String(detected?.message ?? '')}); a's upload ${sent.code} at ${fmt(sentAt).trim()} ms; a's download handler ${source.outcome} ${source.code ?? ''} at ${fmt(sourceAt).trim()} ms after ${mib(source.bytes)}`);
    assertCut("a's upload (the sender)", sent);
    assertCut("a's download handler (the sender)", source);
    assert.ok(detected !== undefined && /unresponsive.*keepalive/.test(String(detected.message)), `keepalive, not the write-stall watch, ended it: ${String(detected?.message)}`);
    for (const [what, at] of [['detection', clock.of(detected.at)], ['upload', sentAt], ['download handler', sourceAt]] as const) {
      assert.ok(at <= DETECTION_BOUND_MS + SLACK_MS, `${what} at ${at} ms after the freeze (bound ${DETECTION_BOUND_MS} + ${SLACK_MS})`);
    }

    const thawAt = clock.now();
    m.nodes.b.thaw();
    thawed = true;
    const [got, back] = await Promise.all([download, reconnected(clock, m.nodes.a, 'b', RECONNECT_BOUND_MS)]);
    done = true;
    const calls = await calm;
    console.log(`# thawed b at ${fmt(thawAt).trim()} ms: its download ended ${got.code} after ${mib(got.bytes)} (${got.message ?? ''}); a-b ready again at ${fmt(back).trim()} ms (${Math.round(back - thawAt)} ms after the thaw); a<->c calls: ${summarize(calls)}`);
    assertCut("b's download, once thawed", got);
    assert.ok(back - thawAt <= RECONNECT_BOUND_MS, `reconnected ${back - thawAt} ms after the thaw (bound ${RECONNECT_BOUND_MS})`);
    assertAllOk('a<->c during the freeze', calls);
  });
});
