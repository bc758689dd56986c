/**
 * `gridwire demo` (what `npm start` runs): three node processes on loopback form a mesh over mutual TLS; A replicates
 * a generated dataset to B and C at the same time over bulk calls on the data lanes while unary calls flow every
 * way; the copies' sha256 are checked at the end. `--kill` kills B mid-transfer and restarts it. The work lives in
 * src/cli/demo/ (orchestrator.ts runs it); this file reads the flags and prints the verdict.
 */
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { UsageError, type CliCommand } from '../command.js';
import { parseDuration, parseSize } from '../connect-flags.js';
import { EXIT } from '../exit-codes.js';
import { Demo, DemoSetupError } from '../demo/orchestrator.js';
import { OpensslMissing } from '../demo/pki.js';
import { renderSummary } from '../demo/summary.js';

const USAGE = `usage: gridwire demo [--size SIZE] [--kill] [--plain] [--interval DURATION] [--dir DIR] [--json]

Three gridwire nodes (A, B, C), each its own process on loopback, form a mesh over mutual TLS (certificates made
for the run with openssl). A replicates a generated dataset to B and C at the same time, as bulk calls on the mesh's
data lanes, while every node calls every other one (unary, on the control lanes). At the end: throughput per
transfer, unary p50/p99 during the transfers, calls per status, and the copies' sha256 against the source's.

  --size SIZE          the dataset, e.g. 64MiB, 1GiB (default 1GiB); B and C each write a copy under --dir
  --kill               SIGKILL B at 40 % of its transfer and restart it: a call to B fails UNAVAILABLE at once, the
                       mesh redials, and the transfer resumes from B's last verified offset
  --plain              a plain tcp:// mesh, without TLS (no openssl needed)
  --interval DURATION  each node calls each peer this often (default 50ms)
  --dir DIR            where the run's temporary directory goes (default: the system's, ${tmpdir()})
  --json               one JSON object with the summary on stdout, no progress

Exit codes: 0 every check held (both copies complete and equal, 0 unary errors outside the kill, with --kill a
resumed transfer); 1 a check failed (each failed check is named); 2 bad flags, or openssl missing; 130 interrupted.`;

export const command: CliCommand = {
  name: 'demo',
  summary: 'three nodes on loopback: a mesh over mutual TLS, A replicating to B and C, calls every way',
  usage: USAGE,
  async run(args, io) {
    const { values } = parseArgsOrUsage(args);
    const sizeBytes = parseSize(values.size, '--size');
    if (sizeBytes < 1) throw new UsageError('--size must be at least 1 byte');
    const intervalMs = parseDuration(values.interval, '--interval');
    if (intervalMs < 1 || intervalMs > 60_000) throw new UsageError('--interval must be between 1ms and 1m');
    // test-only, kept out of --help: a receiver that corrupts its copy, so a test sees the checksum check fail
    const corrupt = io.env.GRIDWIRE_DEMO_CORRUPT;
    const demo = new Demo({
      sizeBytes, kill: values.kill, plain: values.plain, json: values.json, intervalMs,
      parentDir: values.dir ?? tmpdir(), ...(corrupt === undefined || corrupt === '' ? {} : { corrupt }),
    }, io);
    let summary;
    try {
      summary = await demo.run();
    } catch (error) {
      if (io.signal.aborted) return EXIT.INTERRUPTED;
      if (error instanceof OpensslMissing) {
        return fail(io, values.json, EXIT.USAGE, `${error.message}: the demo makes its TLS certificates with it. Install it (apt install openssl, brew install openssl) or pass --plain for a plain tcp:// mesh`);
      }
      if (error instanceof DemoSetupError) return fail(io, values.json, error.exitCode, error.message);
      return fail(io, values.json, EXIT.FAILED, `demo failed: ${(error as Error).message}`);
    }
    if (values.json) io.stdout.write(`${JSON.stringify(summary)}\n`);
    else io.stdout.write(`${renderSummary(summary)}\n`);
    return summary.ok ? EXIT.OK : EXIT.FAILED;
  },
};

function parseArgsOrUsage(args: string[]) {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        size: { type: 'string', default: '1GiB' },
        kill: { type: 'boolean', default: false },
        plain: { type: 'boolean', default: false },
        interval: { type: 'string', default: '50ms' },
        dir: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function fail(io: Parameters<CliCommand['run']>[1], json: boolean, exitCode: number, message: string): number {
  if (json) io.stdout.write(`${JSON.stringify({ ok: false, error: message, exitCode })}\n`);
  else io.stderr.write(`gridwire demo: ${message}\n`);
  return exitCode;
}
