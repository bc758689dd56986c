// `npm run bench` (tsx bench/run.ts): the one orchestrator of gridwire's benchmarks.
//
// Method. gridwire is measured against a raw socket and its peers on loopback, client and server in separate
// processes pinned to different CPUs (taskset; CPU 0 server, CPU 1 client), every run in fresh processes, the systems
// alternated round-robin, and compared within the SAME run (ratios are taken per run, then the median over runs),
// because absolute figures on a shared machine swing 2-4x between runs. Each measurement has a warmup, then a
// measured window between two marks; figures are medians over --runs. A failed run is shown as failed, never
// averaged in. Transfers are checked end to end (the receiver must count every byte the sender sent).
//
// Suites (all by default, in this order), and the targets their checks hold gridwire to:
//   unary                echo on one connection: calls/s, p50/p99 latency and CPU per call, at --concurrency
//                        (default 1 = latency, 64 = throughput; raw at 64 is raw pipelined) and --payload (32 bytes;
//                        a msgpack object { data: 32 bytes }, 42 bytes for the systems without a codec); raw node:net,
//                        ws, grpc-js, yamux (a new stream per call), capnweb (over ws), gridwire. Targets: calls/s at
//                        c=1 >= 0.8x raw (object: 0.85x); at c=64 >= 2x ws, >= 25x grpc-js and >= 10x yamux, object
//                        >= 0.4x raw; client CPU per call object <= bytes + 2 µs
//   bulk-throughput      upload and download MiB/s on one connection: raw node:net writing 64 KiB and (raw-1m) 1 MiB
//                        buffers, grpc-js streaming (4 MiB window), yamux (one stream, 64 KiB writes), and gridwire
//                        once per bulk body: async generator, Node Readable, web ReadableStream, one 16 MiB Uint8Array
//                        per call, Readable -> pipeline() -> Writable. Targets, each direction: 64 KiB sources >= 0.9x
//                        raw; generator and Uint8Array >= 0.85x raw-1m; Readable >= 1.5x yamux; Readable >= 2.5x
//                        grpc-js down, >= 3x up
//   ws-throughput        gridwire's bulk upload and download (as bulk-throughput) over tcp:// and over ws://, the two
//                        alternated, ratios within the same run, with the receiver's CPU ms per GiB (and gridwire@base's
//                        rows with --against). Target: ws:// >= 0.8x tcp://, each direction
//   unary-under-bulk     c=1 echo p50/p99 on an idle gridwire connection vs. beside a download on the same one.
//                        Target: p99 beside the download <= 2x idle
//   lane-latency         two Mesh nodes: c=1 echo p50/p99 idle vs. beside a download on the same connection vs. on
//                        the data lane (dataLane: true), and the download's MiB/s on each. Target: p99 <= 2x idle
//   stream-rss           RSS of server and client with 10 000 idle streams on one connection; server RSS and bytes
//                        produced ahead of the reader while a 1 GiB download is read at 1 MiB/s. Targets: server
//                        < 80 MiB and <= 2.5 KiB per stream, client <= 100 MiB, with the streams open; RSS growth over
//                        the read <= 2 MiB; produced ahead <= the bulk window + the kernel's largest socket buffers
//   idle-connection-rss  server RSS per idle connection, 2 000 connections, gridwire vs. raw node:net. Target: < 64 KiB
//   mesh-formation       32 node processes form a full mesh and call every ordered pair once: spawn -> all done,
//                        cold and behind a barrier, with start-up baselines. Target: cold total < 5 s
//   dos                  (only when named) the attacks of issue 10 against a default gridwire server in its own
//                        process, each beside a canary doing c=1 echo calls: canary p99 against idle, server RSS
//                        growth, how the attacker was closed, crashes. Targets: p99 <= max(3x idle, 5 ms), RSS
//                        growth < 64 MiB, no crash (suites/dos.ts; docs/BENCHMARKS.md "DoS suite")
// Systems: raw, raw-1m (bulk only), ws, grpc (grpc-js), yamux (@chainsafe/libp2p-yamux over a plain TCP socket),
// capnweb (unary only, over ws), gridwire (this checkout's src/index.ts) and, with --against, gridwire@base. Each suite
// runs the systems of --only it knows.
//
//   npm run bench -- [--suite NAME,...] [--only SYSTEM,...] [--runs N] [--seconds N] [--concurrency 1,64]
//                    [--payload bytes,object] [--against DIR] [--no-pin] [--cpu-prof DIR] [--tsx] [--attack NAME,...]
//     --suite        suites to run, from the list above (default: all but dos)
//     --only         systems to run (default: all but gridwire@base, which --against adds)
//     --runs         runs of each measurement (default 2; stream-rss and dos 1)
//     --seconds      measured window per run (default: unary 3, dos 3 per attack, the others 2; stream-rss,
//                    idle-connection-rss and mesh-formation have fixed timelines)
//     --concurrency  calls outstanding in the unary suite (default 1,64)
//     --payload      what each unary call carries (default bytes,object): bytes (32; gridwire's raw codec), object
//                    ({ data: 32 bytes } through gridwire's default codec; 42 bytes for the others)
//     --against DIR  A/B: adds the system gridwire@base, whose client and server import DIR/src/index.ts (compiled
//                    with DIR/tsconfig.json by the memory and fleet suites), driven by THIS checkout's bench code,
//                    alternated with gridwire within each run; every suite then prints gridwire / gridwire@base
//                    ratios (calls/s and MiB/s: above 1 is faster; p99, RSS and ms: below 1 is better). DIR is a
//                    checkout of the other commit with its dependencies reachable (a node_modules in it or above it);
//                    the run stops at once if its library does not load:
//                      git worktree add ../base <commit> && ln -s "$PWD/node_modules" ../base/node_modules
//                    `--against .` is an A/A run: the spread of its ratios is the noise floor of the machine.
//     --no-pin       do not pin with taskset
//     --cpu-prof DIR write a V8 CPU profile of every worker process into DIR, sampled every 100 µs (V8's default 1 ms
//                    sees one sample per dozens of unary calls)
//     --tsx          run the pair suites' workers under tsx instead of compiled to plain JS (the default: a library
//                    under tsx measures differently from what an application runs; processes.ts pairLaunch)
//     --attack       the dos suite's attacks to run (default: all; names in bench/roles/dos-attacks.ts)
//   e.g. npm run bench -- --suite unary --against ../base --runs 3
//        npm run bench -- --suite bulk-throughput --runs 3
//        npm run bench -- --suite lane-latency --runs 3
//
// Output: progress on stderr; on stdout each suite's table and checks (MET / NOT MET against a target where the
// issues set one), then one final JSON line: the suite's own object when one suite ran, else
// { bench: 'all', suites: { <name>: <object> } }.
//
// Files: run.ts (this: flags, suites), suites/ (one file per suite; latency-beside-bulk.ts holds two), processes.ts
// (launching and driving workers), worker.ts (the one worker process) with roles/ (what it runs), messages.ts (the
// IPC contract), systems/ (each system's protocol: raw, ws, grpc, yamux, capnweb, gridwire; gridwire-bodies.ts the bulk
// bodies), report.ts and stats.ts (figures).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { detectPinning, REPO_ROOT, setPairsUnderTsx, setWorkerNodeArgs, tsxLaunch } from './processes.js';
import { probeLibrary, type Suite, type SuiteOptions } from './suites/common.js';
import { runBulkSuite } from './suites/bulk-throughput.js';
import { runWsThroughputSuite } from './suites/ws-throughput.js';
import { runIdleConnectionRssSuite } from './suites/idle-connection-rss.js';
import { runLaneLatencySuite, runUnaryUnderBulkSuite } from './suites/latency-beside-bulk.js';
import { runMeshFormationSuite } from './suites/mesh-formation.js';
import { runStreamRssSuite } from './suites/stream-rss.js';
import { runUnarySuite } from './suites/unary.js';
import { runDosSuite } from './suites/dos.js';
import { ATTACK_NAMES, isAttackName } from './roles/dos-attacks.js';
import { isSystemName, SYSTEM_NAMES, type SystemName } from './systems/index.js';
import { ECHO_PAYLOADS, isEchoPayload } from './systems/scenario.js';

const SUITES = {
  unary: runUnarySuite,
  'bulk-throughput': runBulkSuite,
  'ws-throughput': runWsThroughputSuite,
  'unary-under-bulk': runUnaryUnderBulkSuite,
  'lane-latency': runLaneLatencySuite,
  'stream-rss': runStreamRssSuite,
  'idle-connection-rss': runIdleConnectionRssSuite,
  'mesh-formation': runMeshFormationSuite,
  dos: runDosSuite,
} satisfies Record<string, Suite>;
type SuiteName = keyof typeof SUITES;
const SUITE_NAMES = Object.keys(SUITES) as SuiteName[];
/** The suites run when --suite is not given: the dos suite attacks the machine, it runs only when named. */
const DEFAULT_SUITES = SUITE_NAMES.filter((s) => s !== 'dos');
const DEFAULT_SYSTEMS = SYSTEM_NAMES.filter((s) => s !== 'gridwire@base');

const USAGE =
  `usage: npm run bench -- [--suite ${SUITE_NAMES.join(',')}] [--only ${SYSTEM_NAMES.join(',')}] [--runs N] ` +
  `[--seconds N] [--concurrency 1,64] [--payload ${ECHO_PAYLOADS.join(',')}] [--against DIR] [--no-pin] [--cpu-prof DIR] [--tsx] [--attack ${ATTACK_NAMES.join(',')}]\n` +
  `  (the header of bench/run.ts says what each suite measures and what each flag does)`;

interface Flags {
  suites: SuiteName[];
  options: Omit<SuiteOptions, 'pin' | 'notes'>;
  noPin: boolean;
  cpuProfDir: string | undefined;
  tsx: boolean;
}

function parseFlags(): Flags {
  const { values } = parseArgs({
    options: {
      suite: { type: 'string', default: DEFAULT_SUITES.join(',') },
      seconds: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string', default: DEFAULT_SYSTEMS.join(',') },
      concurrency: { type: 'string', default: '1,64' },
      payload: { type: 'string', default: ECHO_PAYLOADS.join(',') },
      against: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      tsx: { type: 'boolean', default: false },
      attack: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
  const runs = values.runs === undefined ? undefined : Number(values.runs);
  const suites = list(values.suite);
  const only = list(values.only);
  const concurrencies = values.concurrency.split(',').map(Number);
  const payloads = list(values.payload);
  const against = values.against === undefined ? null : path.resolve(values.against);
  const attacks = values.attack === undefined ? null : list(values.attack);
  const bad = (why: string): never => {
    console.error(`bench: ${why}\n${USAGE}`);
    process.exit(2);
  };
  if (seconds !== undefined && !(seconds > 0)) bad(`--seconds must be a positive number, got '${values.seconds}'`);
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) bad(`--runs must be a positive integer, got '${values.runs}'`);
  if (suites.length === 0 || suites.some((s) => !(s in SUITES))) bad(`--suite takes names from ${SUITE_NAMES.join(',')}`);
  if (only.length === 0 || !only.every(isSystemName)) bad(`--only takes names from ${SYSTEM_NAMES.join(',')}`);
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) bad(`--concurrency takes positive integers`);
  if (payloads.length === 0 || !payloads.every(isEchoPayload)) bad(`--payload takes names from ${ECHO_PAYLOADS.join(',')}`);
  if (against !== null && !existsSync(path.join(against, 'src', 'index.ts'))) bad(`--against ${against}: no src/index.ts there`);
  if (against === null && only.includes('gridwire@base')) bad('gridwire@base needs --against DIR');
  if (attacks !== null && (attacks.length === 0 || !attacks.every(isAttackName))) bad(`--attack takes names from ${ATTACK_NAMES.join(',')}`);
  const systems = new Set<string>(only);
  if (against !== null) systems.add('gridwire@base');
  return {
    // Keep the registry orders, so suites run as listed and the round-robin always follows SYSTEM_NAMES.
    suites: SUITE_NAMES.filter((s) => suites.includes(s)),
    options: { seconds, runs, systems: SYSTEM_NAMES.filter((s: SystemName) => systems.has(s)), concurrencies, against, attacks,
      payloads: ECHO_PAYLOADS.filter((p) => payloads.includes(p)) },
    noPin: values['no-pin'],
    cpuProfDir: values['cpu-prof'],
    tsx: values.tsx,
  };
}

/** Whether a node_modules folder is in `dir` or above it (where the other checkout's imports resolve from). */
function reachesNodeModules(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'node_modules'))) return true;
    if (path.dirname(d) === d) return false;
  }
}

async function main(): Promise<void> {
  const flags = parseFlags();
  const pinning = flags.noPin ? { pin: false, note: 'unpinned (--no-pin)' } : detectPinning();
  console.error(`bench: ${pinning.note}`);
  const { against } = flags.options;
  if (against !== null) {
    // an A/B without its B is not worth running: stop here with the reason
    const why = await probeLibrary(tsxLaunch(against).libraries['gridwire@base'] ?? '');
    if (why !== null) {
      const hint = reachesNodeModules(against)
        ? ''
        : `\n  ${against} reaches no node_modules: ln -s ${path.join(REPO_ROOT, 'node_modules')} ${path.join(against, 'node_modules')}`;
      console.error(`bench: --against ${against}: its library does not load: ${why}${hint}`);
      process.exit(2);
    }
  }
  setPairsUnderTsx(flags.tsx);
  if (flags.cpuProfDir !== undefined) setWorkerNodeArgs(['--cpu-prof', `--cpu-prof-dir=${flags.cpuProfDir}`, '--cpu-prof-interval=100']);
  const options: SuiteOptions = { ...flags.options, pin: pinning.pin, notes: [pinning.note] };
  const out: Partial<Record<SuiteName, object>> = {};
  for (const name of flags.suites) out[name] = await SUITES[name](options);
  const only = flags.suites.length === 1 ? out[flags.suites[0] as SuiteName] : undefined;
  console.log(JSON.stringify(only ?? { bench: 'all', suites: out }));
}

main().catch((err: unknown) => {
  console.error('bench failed:', err);
  process.exitCode = 1;
});
