// `npm run bench`: gridwire against a raw socket and its peers, client and server in separate processes pinned to
// different CPUs, each run in fresh processes, systems alternated round-robin and compared within the SAME run,
// because absolute figures on this machine swing 2-4x between runs (see /work/shared/research/baseline.md).
// Suites (all by default, in this order):
//   unary  32-byte echo, concurrency 1 and 64, raw node:net / ws / grpc-js / gridwire         (suites/unary.ts)
//   bulk   upload and download MiB/s, 64 KiB chunks, raw node:net / grpc-js / gridwire        (suites/bulk.ts)
//   mixed  gridwire unary p99 on an idle connection vs. beside a download on the same one     (suites/mixed.ts)
//   rss    gridwire memory: 10 000 idle streams on one connection; a 1 GiB download read slowly (suites/rss.ts)
//   mesh   32 node processes form a full mesh and call every ordered pair once: time from spawn (suites/mesh.ts)
//   connrss server RSS per idle connection, gridwire vs. raw node:net, 2 000 connections (suites/connrss.ts)
//   lanes  two Mesh nodes: unary p99 idle vs. beside a download on the same connection vs. on the data lane (suites/lanes.ts)
//
//   npm run bench -- [--suite unary,bulk,mixed,rss,mesh,connrss,lanes] [--seconds N] [--runs N] [--only raw,ws,grpc,gridwire]
//                    [--concurrency 1,64] [--no-pin] [--cpu-prof DIR]
//
// Prints progress on stderr; on stdout each suite's table and checks against their targets, then one final JSON
// line: the suite's own object when one suite ran (so `--suite unary` prints what the unary bench always printed),
// else { bench: 'all', suites: { <name>: <object> } }.
import { parseArgs } from 'node:util';
import { detectPinning, setWorkerNodeArgs } from './harness.js';
import { runBulkSuite } from './suites/bulk.js';
import { runConnRssSuite } from './suites/connrss.js';
import { runLanesSuite } from './suites/lanes.js';
import { runMeshSuite } from './suites/mesh.js';
import { runMixedSuite } from './suites/mixed.js';
import { runRssSuite } from './suites/rss.js';
import type { Suite, SuiteOptions } from './suites/suite.js';
import { runUnarySuite } from './suites/unary.js';
import { isSystemName, SYSTEM_NAMES } from './systems/index.js';

const SUITES = {
  unary: runUnarySuite,
  bulk: runBulkSuite,
  mixed: runMixedSuite,
  rss: runRssSuite,
  mesh: runMeshSuite,
  connrss: runConnRssSuite,
  lanes: runLanesSuite,
} satisfies Record<string, Suite>;
type SuiteName = keyof typeof SUITES;
const SUITE_NAMES = Object.keys(SUITES) as SuiteName[];

const USAGE =
  `usage: npm run bench -- [--suite ${SUITE_NAMES.join(',')}] [--seconds N] [--runs N] [--only ${SYSTEM_NAMES.join(',')}] ` +
  `[--concurrency 1,64] [--no-pin] [--cpu-prof DIR]\n` +
  `  --seconds  measured window per run (default: unary 3, bulk 2, mixed 2, lanes 2; rss has fixed windows)\n` +
  `  --runs     runs of each measurement (default: 2; rss 1)\n` +
  `  --only     systems of the unary and bulk suites; mixed, rss and lanes run only with gridwire (mesh and connrss ignore it)\n` +
  `  --cpu-prof write a V8 CPU profile of every worker process into DIR`;

interface Flags {
  suites: SuiteName[];
  options: Omit<SuiteOptions, 'pin' | 'notes'>;
  noPin: boolean;
  cpuProfDir: string | undefined;
}

function parseFlags(): Flags {
  const { values } = parseArgs({
    options: {
      suite: { type: 'string', default: SUITE_NAMES.join(',') },
      seconds: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string', default: SYSTEM_NAMES.join(',') },
      concurrency: { type: 'string', default: '1,64' },
      'no-pin': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
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
  const systems = list(values.only);
  const concurrencies = values.concurrency.split(',').map(Number);
  const bad = (why: string): never => {
    console.error(`bench: ${why}\n${USAGE}`);
    process.exit(2);
  };
  if (seconds !== undefined && !(seconds > 0)) bad(`--seconds must be a positive number, got '${values.seconds}'`);
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) bad(`--runs must be a positive integer, got '${values.runs}'`);
  if (suites.length === 0 || suites.some((s) => !(s in SUITES))) bad(`--suite takes names from ${SUITE_NAMES.join(',')}`);
  const unknown = systems.filter((s) => !isSystemName(s));
  if (unknown.length || systems.length === 0) bad(`--only takes names from ${SYSTEM_NAMES.join(',')}`);
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) bad(`--concurrency takes positive integers`);
  return {
    // Keep the registry orders, so suites run as listed and the round-robin is always raw ws grpc gridwire.
    suites: SUITE_NAMES.filter((s) => suites.includes(s)),
    options: { seconds, runs, systems: SYSTEM_NAMES.filter((s) => systems.includes(s)), concurrencies },
    noPin: values['no-pin'],
    cpuProfDir: values['cpu-prof'],
  };
}

async function main(): Promise<void> {
  const flags = parseFlags();
  const pinning = flags.noPin ? { pin: false, note: 'unpinned (--no-pin)' } : detectPinning();
  console.error(`bench: ${pinning.note}`);
  if (flags.cpuProfDir !== undefined) setWorkerNodeArgs(['--cpu-prof', `--cpu-prof-dir=${flags.cpuProfDir}`]);
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
