// Reads a V8 .cpuprofile (from `npm run bench -- ... --cpu-prof DIR`) and prints where the time went, by function:
// self time (default) or inclusive time (--inclusive), over the whole profile or a window of it, and per call when
// told how many calls the window held.
//
//   npx tsx bench/profile/cpuprofile-top.ts FILE [--top 40] [--from=-4300] [--to=-300] [--calls N] [--inclusive]
//     --from/--to  ms from the profile's start, or from its end when negative (written --from=-4300; the window of a run
//                  ends a few hundred ms before its worker exits)
//     --calls      the calls made in the window (calls/s x seconds): adds a µs-per-call column
//
// Caveats: samples are wall-clock, so at c=1 a socket write that hands the CPU to the peer (same core) is charged
// with the peer's run time; (program) is native work outside JS; (garbage collector) is the main thread's share only.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '40' },
    from: { type: 'string' },
    to: { type: 'string' },
    calls: { type: 'string' },
    inclusive: { type: 'boolean', default: false },
  },
});
const file = positionals[0];
if (file === undefined) {
  console.error('usage: npx tsx bench/profile/cpuprofile-top.ts FILE [--top N] [--from MS] [--to MS] [--calls N] [--inclusive]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const name = (n: ProfileNode): string => {
  const f = n.callFrame;
  const where = f.url.replace(/^.*\/(src|node_modules|bench)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${where}${where ? `:${f.lineNumber + 1}` : ''}`;
};

const endUs = profile.timeDeltas.reduce((a, b) => a + b, 0);
const bound = (ms: string | undefined, otherwise: number): number => {
  if (ms === undefined) return otherwise;
  const us = Number(ms) * 1000;
  return us < 0 ? endUs + us : us;
};
const fromUs = bound(values.from, 0);
const toUs = bound(values.to, endUs);

const totals = new Map<string, number>();
let busyUs = 0;
let windowUs = 0;
let t = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  if (t < fromUs || t > toUs) continue;
  windowUs += dt;
  const leaf = byId.get(profile.samples[i]!)!;
  if (leaf.callFrame.functionName === '(idle)') continue;
  busyUs += dt;
  if (!values.inclusive) {
    totals.set(name(leaf), (totals.get(name(leaf)) ?? 0) + dt);
    continue;
  }
  const seen = new Set<string>();
  for (let id: number | undefined = leaf.id; id !== undefined; id = parentOf.get(id)) {
    const key = name(byId.get(id)!);
    if (seen.has(key)) continue; // recursion counts once
    seen.add(key);
    totals.set(key, (totals.get(key) ?? 0) + dt);
  }
}

const calls = values.calls === undefined ? 0 : Number(values.calls);
const perCall = (us: number): string => (calls > 0 ? `${(us / calls).toFixed(3).padStart(8)} µs/call` : '');
console.log(`window ${(windowUs / 1000).toFixed(0)} ms, busy ${(busyUs / 1000).toFixed(0)} ms ${perCall(busyUs)}`);
const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
for (const [key, us] of rows) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / busyUs).toFixed(1).padStart(5)} % ${perCall(us)}  ${key}`);
}
