/**
 * `gridwire demo` as a user runs it (a child process, test/fixtures/cli.ts), with a 64 MiB dataset: three node
 * processes over mutual TLS, A replicating to B and C at once, unary calls every way. It exits 0 with equal checksums
 * (its --json object and its human table both say so); --kill kills B mid-transfer and the transfer resumes from B's
 * last verified offset; a corrupted copy (the test-only GRIDWIRE_DEMO_CORRUPT) makes it exit 1 naming the check; bad
 * flags exit 2. Each run gets its own parent directory (--dir), removed afterwards, and each run must leave it empty:
 * the demo removes its own directory, on success and on failure.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { describe, test, type TestContext } from 'node:test';

import type { DemoSummary } from '../../src/cli/demo/summary.js';
import { CLI_MAIN, runGridwire, type CliResult } from '../fixtures/cli.js';

const TEST_MS = 40_000;
const RUN_MS = 35_000;
const SIZE = 64 * 1024 * 1024;
/** What a resume may send again: the sender's unacknowledged window (8 chunks of 1 MiB, replicate.ts) and the chunk in hand. */
const RESEND_BOUND = 9 * 1024 * 1024;
const DIRECTIONS = ['A->B', 'A->C', 'B->A', 'B->C', 'C->A', 'C->B'];

/** Runs `gridwire demo ...args --dir <a fresh directory>`; asserts the demo left that directory empty. */
async function demo(t: TestContext, args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  const parent = await mkdtemp(join(tmpdir(), 'gridwire-demo-test-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  const result = await runGridwire(['demo', ...args, '--dir', parent], { timeoutMs: RUN_MS, ...(env === undefined ? {} : { env }) });
  assert.equal(result.signal, null, `the demo was killed by the test's bound (${RUN_MS} ms):\n${result.stdout}\n${result.stderr}`);
  assert.deepEqual(await readdir(parent), [], 'the demo removed its run directory');
  return result;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function parseSummary(result: CliResult): DemoSummary {
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `--json prints one object and nothing else:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(lines[0]!) as DemoSummary;
}

void describe('gridwire demo', () => {
  void test('--size 64MiB --json: both copies complete with the source\'s sha256, unary calls in all six directions, 0 errors, exit 0', { timeout: TEST_MS }, async (t) => {
    const result = await demo(t, ['--size', '64MiB', '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const summary = parseSummary(result);
    assert.equal(summary.ok, true);
    assert.deepEqual(summary.failed, []);
    assert.equal(summary.transport, 'mutual TLS');
    assert.deepEqual(summary.transfers.map((x) => [x.to, x.bytes]), [['B', SIZE], ['C', SIZE]]);
    assert.match(summary.checksums.source, /^[0-9a-f]{64}$/);
    assert.deepEqual(summary.checksums.received, { B: summary.checksums.source, C: summary.checksums.source });
    assert.equal(summary.unary.errors, 0);
    assert.deepEqual(Object.keys(summary.unary.byDirection).sort(), DIRECTIONS);
    for (const d of DIRECTIONS) assert.ok(summary.unary.byDirection[d]!.calls > 0, `calls ${d}`);
    assert.ok(summary.unary.p99Ms >= summary.unary.p50Ms && summary.unary.p50Ms > 0);
    assert.equal(summary.kill, undefined);
  });

  void test('--size 64MiB --plain: the human table shows both transfers, the calls per direction, equal checksums and "ok"', { timeout: TEST_MS }, async (t) => {
    const result = await demo(t, ['--size', '64MiB', '--plain']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const out = result.stdout;
    assert.match(out, /mesh up in \d+ ms: 3 pairs, each a control and a data connection over plain TCP/);
    assert.match(out, /^ {2}A -> B +64\.0 MiB /m);
    assert.match(out, /^ {2}A -> C +64\.0 MiB /m);
    for (const d of DIRECTIONS) assert.match(out, new RegExp(`^  ${d.replace('->', ' -> ')} +\\d+ +[\\d.]+ +[\\d.]+ +0$`, 'm'));
    const source = /^ {2}A \(source\) +([0-9a-f]{64})$/m.exec(out)?.[1];
    assert.ok(source !== undefined, out);
    assert.match(out, new RegExp(`^  B +${source} +equal$`, 'm'));
    assert.match(out, new RegExp(`^  C +${source} +equal$`, 'm'));
    assert.match(out, /^ok: both copies complete and equal, \d+ unary calls with 0 errors \(/m);
  });

  void test('--kill: B is SIGKILLed at 40 %, a call to it fails UNAVAILABLE at once, the mesh redials, A -> B resumes from B\'s verified offset; exit 0', { timeout: TEST_MS }, async (t) => {
    const result = await demo(t, ['--size', '64MiB', '--kill', '--json']);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const summary = parseSummary(result);
    assert.equal(summary.ok, true, summary.failed.join('; '));
    const toB = summary.transfers.find((x) => x.to === 'B')!;
    const toC = summary.transfers.find((x) => x.to === 'C')!;
    assert.ok(toB.resumedFrom > 0, 'resumed from a verified offset');
    assert.ok(toB.resumedFrom <= 0.4 * SIZE + 1, `resumed from ${toB.resumedFrom}, at most where B was killed`);
    assert.ok(toB.attempts >= 2);
    assert.ok(toB.resentBytes <= RESEND_BOUND, `re-sent ${toB.resentBytes} bytes, at most ${RESEND_BOUND}`);
    assert.equal(toC.attempts, 1, 'C was not disturbed');
    assert.equal(summary.kill?.probe?.status, 'UNAVAILABLE');
    assert.ok(summary.kill.probe.ms < 1_000, `fail-fast: ${summary.kill.probe.ms} ms`);
    assert.ok((summary.kill.redialMs ?? Infinity) < 15_000);
    assert.deepEqual(summary.checksums.received, { B: summary.checksums.source, C: summary.checksums.source });
    assert.equal(summary.unary.errors, 0, 'no failure outside the kill window');
  });

  void test('a corrupted copy (GRIDWIRE_DEMO_CORRUPT=C) fails the checksum check: exit 1, the check named in the table and in --json', { timeout: TEST_MS }, async (t) => {
    const result = await demo(t, ['--size', '4MiB', '--plain', '--json'], { GRIDWIRE_DEMO_CORRUPT: 'C' });
    assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
    const summary = parseSummary(result);
    assert.equal(summary.ok, false);
    assert.equal(summary.checksums.received.B, summary.checksums.source);
    assert.notEqual(summary.checksums.received.C, summary.checksums.source);
    assert.equal(summary.failed.length, 1);
    assert.match(summary.failed[0]!, /^C's checksum [0-9a-f]{16}\.\.\. differs from the source's/);
  });

  void test('SIGINT mid-transfer: exit 130, every node process gone, the run directory removed', { timeout: TEST_MS }, async (t) => {
    const parent = await mkdtemp(join(tmpdir(), 'gridwire-demo-test-'));
    t.after(() => rm(parent, { recursive: true, force: true }));
    const child = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, 'demo', '--size', '1GiB', '--plain', '--dir', parent], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pids: number[] = [];
    t.after(() => {
      child.kill('SIGKILL');
      for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
    });
    let out = '';
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no transfer started within 20 s:\n${out}\n${err}`)), 20_000);
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (/A replicates/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    for (const match of out.matchAll(/\(pid (\d+)\)/g)) pids.push(Number(match[1]));
    assert.equal(pids.length, 3, out);
    assert.ok(pids.every(alive));
    child.kill('SIGINT');
    assert.equal(await exited, 130, `${out}\n${err}`);
    assert.deepEqual(pids.filter(alive), [], 'no node process outlived the demo');
    assert.deepEqual(await readdir(parent), [], 'the run directory was removed');
  });

  void test('a dataset larger than the free space: exit 1 before any node starts, saying how much is needed and where', { timeout: TEST_MS }, async (t) => {
    const result = await demo(t, ['--size', '100TiB']);
    assert.equal(result.code, 1, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /not enough disk space: B and C each write a 100\.00 TiB copy, so the demo needs 200\.00 TiB free in \S+, which has [\d.]+ [GMK]i?B; give a smaller --size or another --dir/);
    assert.doesNotMatch(result.stdout, /started A/);
  });

  void test('without openssl on the PATH: exit 2, saying to install it or to pass --plain; no node started', { timeout: TEST_MS }, async (t) => {
    const emptyPath = await mkdtemp(join(tmpdir(), 'gridwire-demo-nopath-'));
    t.after(() => rm(emptyPath, { recursive: true, force: true }));
    const result = await demo(t, ['--size', '1MiB'], { PATH: emptyPath });
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /openssl is not installed.*Install it .* or pass --plain for a plain tcp:\/\/ mesh/);
    assert.doesNotMatch(result.stdout, /started A/);
  });

  void test('bad flags exit 2 with the reason: an unknown flag, a malformed size, a zero size, a stray argument', { timeout: TEST_MS }, async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--bogus'], /Unknown option '--bogus'/],
      [['--size', 'lots'], /--size "lots" is not a size/],
      [['--size', '0'], /--size must be at least 1 byte/],
      [['--interval', 'soon'], /--interval "soon" is not a duration/],
      [['extra'], /Unexpected argument 'extra'/],
    ];
    await Promise.all(cases.map(async ([args, message]) => {
      const result = await runGridwire(['demo', ...args], { timeoutMs: RUN_MS });
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }));
  });
});
