/**
 * The bulk receive window sized to what the connection needs (session/window-tuner.ts, issue 12): it starts at
 * bulkWindow and grows, by CREDIT beyond it, while the delivery rate x the smallest RTT says the window limits the
 * transfer, up to maxBulkWindow per stream, connectionWindow of growth per connection and the process's memoryBudget.
 * - Simulated links (a clock and an RTT given to the tuner): a long fat link (1 Gbit/s x 50 ms, ~6 MiB in flight)
 *   grows the window to cover it within about a second; loopback (1.5 GB/s x 50 µs) and a slow reader never grow it;
 *   an RTT that overstates the path buys one doubling, not more; the connection's and the process's budgets cap it and
 *   get everything back when the stream closes.
 * - A real download over a memory pair with 10 ms of delay each way grows its window, and what the handler's
 *   generator gets ahead of a reader that then stops stays within the window the tuner reached (T-D5: a sender may
 *   push only what the windows allow).
 * - With default options and no delay, a slowly read download keeps its 256 KiB window (T-D5).
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import { createMemoryPair, createSession, serve, type RpcSession, type Transport } from '../../src/index.js';
import { ConnectionMemory } from '../../src/session/connection-memory.js';
import { MemoryBudget } from '../../src/session/memory-budget.js';
import { resolveSessionOptions } from '../../src/session/options.js';
import { GROWTH_FACTOR, WindowTuner, type RttSource } from '../../src/session/window-tuner.js';
import { Bulk, CHUNK_BYTES, KiB, MiB } from '../fixtures/bulk.js';
import { sleep, within } from '../helpers.js';

const DEFAULTS = resolveSessionOptions();

class FakeRtt implements RttSource {
  probes = 0;
  constructor(public minRttMs: number | undefined) {}
  probeRtt(): void {
    this.probes++;
  }
}

interface Link {
  /** What the path (or the reader) can carry, bytes per ms. */
  capacity: number;
  /** The path's round-trip time, ms. */
  rttMs: number;
  /** The RTT the tuner is told (default: the path's; null: none measured yet). */
  measuredRttMs?: number | null;
  seconds?: number;
  connectionWindow?: number;
  processBytes?: number;
}

/**
 * One bulk stream's credit loop on a simulated link: the reader returns credit in batches of half the window; each
 * batch took as long as the link needs at the rate the window allows (min(capacity, window / RTT)).
 */
function simulate(link: Link) {
  let now = 0;
  const rtt = new FakeRtt(link.measuredRttMs === null ? undefined : (link.measuredRttMs ?? link.rttMs));
  const memory = new ConnectionMemory(
    { maxReassemblyBytes: 0, maxQueuedSendBytes: 0, connectionWindow: link.connectionWindow ?? DEFAULTS.connectionWindow },
    new MemoryBudget(link.processBytes ?? 1024 * MiB),
  );
  const tuner = new WindowTuner(DEFAULTS, memory, rtt, () => now);
  let window = DEFAULTS.bulkWindow;
  const tuned = tuner.track(window);
  assert.ok(tuned !== undefined, 'a bulk window is tuned by default');
  const growth: Array<{ atMs: number; window: number }> = [];
  let delivered = 0;
  while (now < (link.seconds ?? 3) * 1000) {
    const batch = window / 2;
    now += batch / Math.min(link.capacity, window / link.rttMs);
    delivered += batch;
    const extra = tuned.credit(batch, window);
    window += extra;
    if (extra > 0) growth.push({ atMs: Math.round(now), window });
  }
  return { window, growth, tuner, tuned, memory, rtt, delivered };
}

const describeGrowth = (growth: Array<{ atMs: number; window: number }>): string =>
  growth.map((g) => `${g.atMs} ms: ${g.window / KiB} KiB`).join(', ') || 'none';

void describe('the bulk window tuner, on simulated links', () => {
  void test('a long fat link (1 Gbit/s x 50 ms, ~6 MiB in flight) grows a 256 KiB window to cover it within about a second, up to maxBulkWindow', (t) => {
    const bdp = 125_000 * 50; // bytes per ms x ms
    const { window, growth, tuner, rtt } = simulate({ capacity: 125_000, rttMs: 50 });
    t.diagnostic(`window growth over time: ${describeGrowth(growth)}`);
    assert.equal(rtt.probes, 1, 'the stream asked for an RTT probe when it started');
    assert.ok(window >= bdp, `the window reached ${window} bytes, the path holds ${bdp}`);
    assert.ok(window <= DEFAULTS.maxBulkWindow, `the window ${window} stays within maxBulkWindow`);
    const covered = growth.find((g) => g.window >= bdp);
    assert.ok(covered !== undefined && covered.atMs <= 1500, `the window covered the path after ${covered?.atMs} ms`);
    assert.equal(tuner.stats.largestWindowBytes, window, 'stats report the window');
    assert.equal(tuner.stats.grownBytes, window - DEFAULTS.bulkWindow, 'stats report the growth held');
  });

  void test('loopback (1.5 GB/s x 50 µs) and a reader slower than the path never grow the window', () => {
    for (const link of [
      { capacity: 1_500_000, rttMs: 0.05 }, // what a fast local link carries in an RTT is far below the window
      { capacity: 50_000, rttMs: 2 }, // a reader taking 50 MB/s over a 2 ms path: 100 KB in flight, the window holds it twice
    ]) {
      const { window, growth } = simulate(link);
      assert.equal(window, DEFAULTS.bulkWindow, `link ${JSON.stringify(link)} grew the window: ${describeGrowth(growth)}`);
    }
  });

  void test('an RTT that overstates the path (a PING queued behind data) buys one doubling, not more: the next one would not raise the rate', (t) => {
    // the reader takes 200 MB/s whatever the window; the tuner was told 10 ms while the path is 0.1 ms
    const { window, growth } = simulate({ capacity: 200_000, rttMs: 0.1, measuredRttMs: 10 });
    t.diagnostic(`growth: ${describeGrowth(growth)}`);
    assert.equal(window, 2 * DEFAULTS.bulkWindow);
  });

  void test('without an RTT measured yet, the window does not grow', () => {
    const { window } = simulate({ capacity: 125_000, rttMs: 50, measuredRttMs: null });
    assert.equal(window, DEFAULTS.bulkWindow);
  });

  void test("growth is capped by the connection's share (connectionWindow) and the process's memoryBudget, and given back when the stream closes", () => {
    const byConnection = simulate({ capacity: 125_000, rttMs: 50, connectionWindow: 4 * MiB });
    assert.ok(byConnection.window - DEFAULTS.bulkWindow <= 4 * MiB, `grew ${byConnection.window - DEFAULTS.bulkWindow} bytes past a 4 MiB share`);
    assert.ok(byConnection.window >= 2 * MiB, `still grew within the share (${byConnection.window})`);
    assert.equal(byConnection.memory.heldBytes, byConnection.window - DEFAULTS.bulkWindow, 'the growth is reserved');
    byConnection.tuned.release();
    assert.equal(byConnection.memory.heldBytes, 0, 'closing the stream gives it back');
    assert.equal(byConnection.tuner.stats.grownBytes, 0);
    assert.equal(byConnection.tuner.stats.streams, 0);

    const byProcess = simulate({ capacity: 125_000, rttMs: 50, processBytes: MiB });
    assert.ok(byProcess.window - DEFAULTS.bulkWindow <= MiB, `grew ${byProcess.window - DEFAULTS.bulkWindow} bytes past a 1 MiB process budget`);
    assert.ok(byProcess.window > DEFAULTS.bulkWindow, 'still grew within it');
  });

  void test('two streams share one connection share; maxBulkWindow at bulkWindow turns tuning off', () => {
    let now = 0;
    const memory = new ConnectionMemory({ maxReassemblyBytes: 0, maxQueuedSendBytes: 0, connectionWindow: 3 * MiB }, new MemoryBudget(1024 * MiB));
    const tuner = new WindowTuner(DEFAULTS, memory, new FakeRtt(50), () => now);
    const windows = [DEFAULTS.bulkWindow, DEFAULTS.bulkWindow];
    const tuned = windows.map((w) => tuner.track(w)!);
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 2; i++) {
        now += windows[i]! / 2 / Math.min(125_000, windows[i]! / 50);
        windows[i]! += tuned[i]!.credit(windows[i]! / 2, windows[i]!);
      }
    }
    const grown = windows[0]! + windows[1]! - 2 * DEFAULTS.bulkWindow;
    assert.ok(grown <= 3 * MiB, `two streams grew ${grown} bytes past a 3 MiB share`);
    assert.equal(memory.heldBytes, grown);

    const off = new WindowTuner({ bulkWindow: DEFAULTS.bulkWindow, maxBulkWindow: DEFAULTS.bulkWindow }, memory, new FakeRtt(50), () => now);
    assert.equal(off.track(DEFAULTS.bulkWindow), undefined);
  });

  void test(`the window holds ${GROWTH_FACTOR} x rate x RTT once grown: a 100 Mbit/s x 20 ms path settles between that and twice it`, () => {
    const bdp = 12_500 * 20;
    const { window } = simulate({ capacity: 12_500, rttMs: 20 });
    assert.ok(window >= GROWTH_FACTOR * bdp && window <= 2 * GROWTH_FACTOR * bdp, `window ${window}, path ${bdp}`);
  });
});

// ---------------------------------------------------------------- real sessions

/** A memory transport whose deliveries (and EOF, close) arrive `ms` later: half of a simulated round trip. */
function delayed(end: Transport, ms: number): Transport {
  return {
    peer: end.peer,
    attach: (sink) =>
      end.attach({
        onData: (chunk) => setTimeout(() => sink.onData(chunk), ms),
        onEnd: () => setTimeout(() => sink.onEnd(), ms),
        onClose: (error) => setTimeout(() => sink.onClose(error), ms),
        onDrain: () => sink.onDrain(),
      }),
    write: (chunks) => end.write(chunks),
    end: () => end.end(),
    destroy: (error) => end.destroy(error),
  };
}

/** Counts what the download handler's generator produced; the reader counts what it took. */
class Flow {
  produced = 0;
  consumed = 0;
  maxAhead = 0;
  async *source(total: number): AsyncGenerator<Uint8Array> {
    const chunk = new Uint8Array(CHUNK_BYTES).fill(0x42);
    while (this.produced < total) {
      this.produced += chunk.length;
      this.maxAhead = Math.max(this.maxAhead, this.produced - this.consumed);
      yield chunk;
    }
  }
  /** Waits until the producer has made no progress for `quietMs`: it waits for credit. */
  async stalled(quietMs = 100): Promise<void> {
    let last = -1;
    while (this.produced !== last) {
      last = this.produced;
      await sleep(quietMs);
    }
  }
}

async function downloadPair(t: TestContext, flow: Flow, delayMs: number): Promise<RpcSession> {
  const [a, b] = createMemoryPair();
  const service = serve(Bulk, {
    put: () => Promise.reject(new Error('unused')),
    get: (req) => flow.source(req.bytes),
    echo: (s) => s,
  });
  const caller = createSession(delayMs > 0 ? delayed(a, delayMs) : a, 'dialer');
  const callee = createSession(delayMs > 0 ? delayed(b, delayMs) : b, 'acceptor', { services: [service] });
  t.after(() => {
    caller.destroy();
    callee.destroy();
  });
  await within(Promise.all([caller.ready, callee.ready]), 2000, 'handshake');
  return caller;
}

void describe('bulk windows on real sessions', () => {
  void test('T-D5 a download over a 20 ms round trip grows its window; when the reader stops, the generator stays within the window reached', { timeout: 30_000 }, async (t) => {
    const flow = new Flow();
    const caller = await downloadPair(t, flow, 10);
    const total = 1024 * MiB;
    const iterator = caller.client(Bulk).get({ bytes: total })[Symbol.asyncIterator]();
    // read at full speed until the window has grown a few times (or 256 MiB went by)
    while (caller.core.windowStats.growths < 3 && flow.consumed < 256 * MiB) {
      const next = await within(iterator.next(), 5000, 'a chunk');
      assert.equal(next.done, false);
      flow.consumed += next.value.length;
    }
    const stats = caller.core.windowStats;
    t.diagnostic(`after ${flow.consumed / MiB} MiB: ${JSON.stringify(stats)}`);
    assert.ok(stats.minRttMs !== undefined && stats.minRttMs >= 15, `the RTT measured: ${stats.minRttMs} ms`);
    assert.ok(stats.growths >= 3 && stats.largestWindowBytes >= 8 * DEFAULTS.bulkWindow, `the window grew: ${JSON.stringify(stats)}`);
    // the reader stops: the generator fills what the window allows, and no more
    await flow.stalled();
    const window = caller.core.windowStats.largestWindowBytes;
    const slack = 4 * CHUNK_BYTES; // the sender's queue (64 KiB) and a couple of chunks in hand
    assert.ok(flow.produced - flow.consumed <= window + slack, `${flow.produced - flow.consumed} bytes ahead of a stopped reader, window ${window}`);
    assert.ok(window <= DEFAULTS.maxBulkWindow);
    await iterator.return?.();
  });

  void test('T-D5 with default options and no delay, a slowly read download keeps a 256 KiB window: the generator stays within it', { timeout: 20_000 }, async (t) => {
    const flow = new Flow();
    const caller = await downloadPair(t, flow, 0);
    const iterator = caller.client(Bulk).get({ bytes: 1024 * MiB })[Symbol.asyncIterator]();
    await flow.stalled();
    for (let i = 0; i < 40; i++) {
      const next = await within(iterator.next(), 5000, 'a chunk');
      flow.consumed += next.value!.length;
      await sleep(5);
    }
    await flow.stalled();
    const stats = caller.core.windowStats;
    t.diagnostic(`at most ${flow.maxAhead / KiB} KiB ahead of the reader; ${JSON.stringify(stats)}`);
    assert.equal(stats.growths, 0, 'a slow reader does not grow the window');
    assert.equal(stats.largestWindowBytes, DEFAULTS.bulkWindow);
    assert.ok(flow.maxAhead <= DEFAULTS.bulkWindow + 4 * CHUNK_BYTES, `the generator got ${flow.maxAhead} bytes ahead`);
    await iterator.return?.();
  });
});
