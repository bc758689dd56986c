/**
 * Long fat links (issue 14, deliver 3): with default options, one bulk transfer fills a link of 1 Gbit/s x 50 ms RTT
 * and one of 100 Mbit/s x 200 ms RTT, both ways (an upload a -> b and a download a <- b, sha256 checked), because the
 * bulk window and the connection window grow with the measured bandwidth-delay product (session/window-tuner.ts,
 * receive-budget.ts). The window's growth over time (the receiver's window, the last epoch's rate, the path's credit
 * loop, sampled every 100 ms; a line per change and one a second) is printed for each transfer. An epoch's rate is a
 * window over the time the reader took to consume it: a reader catching up a backlog (its process was descheduled on
 * this shared machine) shows more than the link for that epoch.
 *
 * The bound tests gridwire, not the machine: raw TCP (fixtures/raw-tcp.ts, plain node:net) crosses the same shaped
 * link in the same test just before. gridwire must reach 80 % of the nominal rate (the issue's target) or 90 % of what
 * raw TCP did, whichever is lower (continuous: no cliff at a threshold): the
 * machine (2 cores shared with other tests, a user-space delay line) may be loaded, and at 100 Mbit/s x 200 ms TCP's
 * own start-up takes ~1.5 s, so no transfer of a size this test can afford averages 80 % end to end (raw TCP: ~73 %
 * on 64 MiB). The test prints both rates and which bound it used. Rates are end to end, as a user sees them: from the
 * call (raw TCP: the connect) to the last byte's answer, ramp-up included; and over the second half of the bytes, as the
 * receiver saw them arrive: the rate a transfer reaches once TCP and the windows have ramped up, held to the same
 * bounds against raw TCP's second half (this is where 100 Mbit/s x 200 ms shows 80 % of the link).
 *
 * Both ends of the link are shaped BEFORE the nodes connect: the hosts' congestion control (the machine's, here BBR)
 * keeps the smallest round trip it saw for 10 s, and a connection made over the unshaped link believes the path is
 * 0.03 ms long, keeping a few dozen segments in flight until that estimate expires: an artefact of changing the path
 * under a live connection, which real paths do not do (and which held an earlier measurement to ~200 Mbit/s).
 *
 * test:net runs this file alone, after the others: it is CPU-bound (1 Gbit/s through a user-space delay line on 2
 * cores), and a neighbour's load would be charged to gridwire.
 *
 * Sizes: 512 MiB each way at 1 Gbit/s (~4.5 s at line rate), 64 MiB at 100 Mbit/s (~5.4 s): long enough that the
 * window's ramp-up (about as long as TCP's own) does not decide the result; the whole file takes
 * about a minute on an idle machine, bounded to 90 s.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it, type TestContext } from 'node:test';
import { netSkipReason, TestNetwork, type Host } from './fixtures/netns.js';
import { linkSkipReason, shapeLink } from './fixtures/links.js';
import { nodeUrl, startNode, type NetNode } from './fixtures/net-node.js';

const skip = netSkipReason() ?? linkSkipReason();
if (skip !== undefined) console.log(`# test:net skipped: ${skip}`);

const RAW_TCP = fileURLToPath(new URL('./fixtures/raw-tcp.ts', import.meta.url));
const MiB = 1024 * 1024;
/** The target: gridwire reaches this share of the nominal link rate... */
const TARGET_SHARE = 0.8;
/** ...or this share of what raw TCP reached over the same link just before, whichever is lower (continuous: no cliff). */
const RAW_SHARE = 0.9;

interface Transfer {
  ms: number;
  /** How long the second half of the bytes took to arrive at the receiver: the rate once windows have ramped up. */
  secondHalfMs: number;
  bytes: number;
  sha256: string;
  expected: string;
}

/** What `windows` answers: per lane, per session, the window tuner's stats (session/window-tuner.ts). */
interface WindowSample {
  streams: number;
  windowBytes: number;
  grownBytes: number;
  growths: number;
  shrinks: number;
  rateBytesPerSecond: number;
  pathLoopMs?: number;
}

const mbit = (bytes: number, ms: number): number => (bytes * 8) / ms / 1000;

/** Raw TCP from `from` to `to` over the shaped link: Mbit/s end to end, and over the second half of the bytes. */
async function rawTcp(network: TestNetwork, from: Host, to: Host, bytes: number): Promise<{ whole: number; secondHalf: number }> {
  const receiver = network.spawn(to.ns, process.execPath, ['--import', 'tsx', RAW_TCP, 'recv', to.ipv4, '7100', String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await once(receiver.stdout!, 'data'); // "listening"
  const sender = network.spawn(from.ns, process.execPath, ['--import', 'tsx', RAW_TCP, 'send', to.ipv4, '7100', String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  sender.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
  await once(sender, 'exit');
  const result = JSON.parse(out) as { bytes: number; ms: number; secondHalfMs: number };
  assert.equal(result.bytes, bytes, 'raw TCP: every byte arrived');
  return { whole: mbit(result.bytes, result.ms), secondHalf: mbit(result.bytes / 2, result.secondHalfMs) };
}

/**
 * The bound a rate must reach: TARGET_SHARE of nominal, or RAW_SHARE of raw TCP when that is lower (raw TCP below ~89 %
 * of the link: its own ramp-up at this size, or a loaded machine). Continuous, so a raw figure a hair either side of a
 * threshold cannot move the bound by 5 %.
 */
function boundFor(rateMbit: number, raw: number): { bound: number; name: string } {
  const nominal = TARGET_SHARE * rateMbit;
  const ofRaw = RAW_SHARE * raw;
  const rawShare = `raw TCP reached ${((raw / rateMbit) * 100).toFixed(0)} % of the nominal ${rateMbit} Mbit/s`;
  if (nominal <= ofRaw) return { bound: nominal, name: `${TARGET_SHARE * 100} % of the nominal ${rateMbit} Mbit/s (${rawShare})` };
  return { bound: ofRaw, name: `${RAW_SHARE * 100} % of raw TCP (${rawShare}: its own ramp-up at this size, or a loaded machine)` };
}

/** Samples the receiver's window every 100 ms while `transfer` runs; returns its result and the time series. */
async function sampled(receiver: NetNode, peer: string, transfer: Promise<Transfer>): Promise<{ result: Transfer; series: string[]; last: WindowSample | undefined }> {
  const started = performance.now();
  const series: string[] = [];
  let last: WindowSample | undefined;
  let done = false;
  const sampling = (async () => {
    let shown = -1;
    let shownAt = -Infinity;
    while (!done) {
      const lanes = await receiver.request<Record<string, WindowSample[]>>('windows', { peer }).catch(() => ({}));
      const stats = Object.values(lanes).flat().find((s) => s.streams > 0);
      if (stats !== undefined) {
        last = stats;
        // one line per change of window, and one a second while it holds
        const t = Math.round(performance.now() - started);
        if (stats.windowBytes !== shown || t - shownAt >= 1000) {
          shown = stats.windowBytes;
          shownAt = t;
          series.push(`${String(t).padStart(6)} ms  window ${(stats.windowBytes / MiB).toFixed(2).padStart(6)} MiB  rate ${mbit(stats.rateBytesPerSecond, 1000).toFixed(0).padStart(5)} Mbit/s  loop ${stats.pathLoopMs?.toFixed(1) ?? '-'} ms  growths ${stats.growths} shrinks ${stats.shrinks}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    return { result: await transfer, series, last };
  } finally {
    done = true;
    await sampling;
  }
}

async function longFatLink(t: TestContext, rateMbit: number, rttMs: number, bytes: number): Promise<void> {
  const network = await TestNetwork.create(t, { hosts: 2 });
  const [h1, h2] = network.hosts as [Host, Host];
  // both ways, before the nodes connect (the header says why)
  await shapeLink(network, h1, { rateMbit, delayMs: rttMs / 2 });
  await shapeLink(network, h2, { rateMbit, delayMs: rttMs / 2 });
  const a = await startNode(network, h1, { name: 'a', peers: { b: nodeUrl(h2) } });
  const b = await startNode(network, h2, { name: 'b', peers: { a: nodeUrl(h1) } });
  await a.request('echo', { peer: 'b', waitForReady: true, timeoutMs: 10_000 });

  const rawRates = await rawTcp(network, h1, h2, bytes);
  const raw = rawRates.whole;
  const { bound, name: boundName } = boundFor(rateMbit, raw);
  const steady = boundFor(rateMbit, rawRates.secondHalf);
  t.diagnostic(`${rateMbit} Mbit/s x ${rttMs} ms, ${bytes / MiB} MiB: raw TCP ${raw.toFixed(0)} Mbit/s (second half ${rawRates.secondHalf.toFixed(0)}); bound ${bound.toFixed(0)} Mbit/s = ${boundName}; second half: ${steady.bound.toFixed(0)} Mbit/s = ${steady.name}`);

  const timeoutMs = Math.max(30_000, (bytes * 8) / (rateMbit * 1000) * 4);
  const failures: string[] = [];
  for (const [direction, run] of [
    ['upload a -> b', () => sampled(b, 'a', a.request<Transfer>('upload', { peer: 'b', bytes, seed: 1, timeoutMs }, timeoutMs + 5_000))],
    ['download a <- b', () => sampled(a, 'b', a.request<Transfer>('download', { peer: 'b', bytes, seed: 2, timeoutMs }, timeoutMs + 5_000))],
  ] as const) {
    const { result, series, last } = await run();
    assert.equal(result.bytes, bytes, `${direction}: every byte arrived`);
    assert.equal(result.sha256, result.expected, `${direction}: sha256`);
    const rate = mbit(result.bytes, result.ms);
    const secondHalf = mbit(result.bytes / 2, result.secondHalfMs);
    t.diagnostic(`${direction}: gridwire ${rate.toFixed(0)} Mbit/s (${((rate / rateMbit) * 100).toFixed(0)} % of nominal, ${((rate / raw) * 100).toFixed(0)} % of raw TCP) in ${result.ms.toFixed(0)} ms; second half ${secondHalf.toFixed(0)} Mbit/s (${((secondHalf / rateMbit) * 100).toFixed(0)} % of nominal, ${((secondHalf / rawRates.secondHalf) * 100).toFixed(0)} % of raw TCP's); window: ${last?.growths ?? 0} growths, ${last?.shrinks ?? 0} shrinks`);
    t.diagnostic(`${direction}: the receiver's window over time (t from the call; the rate is the last epoch's, a window consumed)`);
    for (const line of series) t.diagnostic(`  ${line}`);
    if (rate < bound) failures.push(`${direction}: ${rate.toFixed(0)} Mbit/s end to end, below ${bound.toFixed(0)} Mbit/s (${boundName})`);
    if (secondHalf < steady.bound) failures.push(`${direction}: ${secondHalf.toFixed(0)} Mbit/s over the second half, below ${steady.bound.toFixed(0)} Mbit/s (${steady.name})`);
  }
  assert.deepEqual(failures, []);
}

void describe('long fat links: one bulk transfer fills the link with default options (issue 14)', { skip, timeout: 90_000 }, () => {
  void it('1 Gbit/s x 50 ms RTT: upload and download reach 80 % of the link (or 90 % of raw TCP, when lower)', async (t) => {
    await longFatLink(t, 1000, 50, 512 * MiB);
  });

  void it('100 Mbit/s x 200 ms RTT: upload and download reach 80 % of the link (or 90 % of raw TCP, when lower)', async (t) => {
    await longFatLink(t, 100, 200, 64 * MiB);
  });
});
