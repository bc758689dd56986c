/**
 * The soak's command line (`npm run soak -- --help`): parsed and range-checked here, so the other files take a plain
 * object. A bad flag is a UsageError (exit 2 with the usage text).
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../../../src/cli/connect-flags.js';
import { UsageError } from '../../../src/cli/command.js';

export const SELF_TESTS = ['truncation', 'leak', 'failure'] as const;
export type SelfTest = (typeof SELF_TESTS)[number];

export interface SoakOptions {
  durationMs: number;
  /** Hosts in the mesh, 3..16: one fault at a time leaves at least two healthy. */
  hosts: number;
  seed: number;
  json: boolean;
  /** Health samples of every node, this often. */
  sampleMs: number;
  progressMs: number;
  /** Unary call loops per node (one stream loop and one bulk loop besides). */
  unaryLoops: number;
  /** Keepalive interval and timeout of every node; 0: the library's defaults (30 s + 20 s). */
  keepaliveMs: number;
  /** Quiet time after the mesh has reconverged that still counts as the fault's window. */
  marginMs: number;
  /** Where to write every health sample (JSON lines), to plot or fit again. */
  samplesFile: string | undefined;
  /** A defect put in on purpose, to show that the check that should catch it fails the run. */
  selfTest: SelfTest | undefined;
}

export const USAGE = `usage: npm run soak -- [options]

  --duration <d>     how long the calls and faults run: 30s, 10m, 2h (default 10m)
  --hosts <n>        mesh nodes, each in its own network namespace, 3..16 (default 4)
  --seed <n>         seed of the fault schedule and of the calls' choices (default: from the clock, printed)
  --json             a machine-readable summary on stdout (the report goes to stderr; npm run -s soak
                     keeps npm's banner off stdout)
  --sample <d>       health sample interval (default 5s)
  --progress <d>     progress line interval (default 30s)
  --unary <n>        unary call loops per node, 1..16 (default 2; plus one stream and one bulk loop)
  --keepalive <d>    keepalive interval and timeout of the nodes; 0 = the library's defaults (default 5s)
  --margin <d>       a fault's window lasts until the mesh has reconverged plus this (default 5s)
  --samples-file <f> write every health sample there (JSON lines)
  --self-test <what> put in a defect and show the soak catches it: ${SELF_TESTS.join(' | ')}
  --help`;

/** Parses argv (without node and the script); throws UsageError. Returns undefined for --help. */
export function parseSoakArgs(argv: string[], now = Date.now()): SoakOptions | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        duration: { type: 'string', default: '10m' },
        hosts: { type: 'string', default: '4' },
        seed: { type: 'string' },
        json: { type: 'boolean', default: false },
        sample: { type: 'string', default: '5s' },
        progress: { type: 'string', default: '30s' },
        unary: { type: 'string', default: '2' },
        keepalive: { type: 'string', default: '5s' },
        margin: { type: 'string', default: '5s' },
        'self-test': { type: 'string' },
        'samples-file': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const selfTest = values['self-test'];
  if (selfTest !== undefined && !(SELF_TESTS as readonly string[]).includes(selfTest)) throw new UsageError(`--self-test must be one of ${SELF_TESTS.join(', ')}`);
  const options: SoakOptions = {
    durationMs: parseDuration(values.duration, '--duration'),
    hosts: integer(values.hosts, '--hosts', 3, 16),
    seed: values.seed === undefined ? now % 1_000_000 : integer(values.seed, '--seed', 0, 2 ** 31 - 1),
    json: values.json,
    sampleMs: parseDuration(values.sample, '--sample'),
    progressMs: parseDuration(values.progress, '--progress'),
    unaryLoops: integer(values.unary, '--unary', 1, 16),
    keepaliveMs: parseDuration(values.keepalive, '--keepalive'),
    marginMs: parseDuration(values.margin, '--margin'),
    samplesFile: values['samples-file'],
    selfTest: selfTest as SelfTest | undefined,
  };
  if (options.durationMs < 20_000) throw new UsageError('--duration must be at least 20s (a warm-up, one fault, its recovery)');
  if (options.sampleMs < 500) throw new UsageError('--sample must be at least 500ms');
  if (options.progressMs < 1_000) throw new UsageError('--progress must be at least 1s');
  if (options.keepaliveMs !== 0 && options.keepaliveMs < 1_000) throw new UsageError('--keepalive must be 0 or at least 1s');
  return options;
}

function integer(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`${flag} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  return value;
}

/** `600000` ms as `10m`, `90000` as `1m30s`. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${rest > 0 || s === 0 ? `${rest}s` : ''}`;
}
