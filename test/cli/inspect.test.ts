/**
 * `gridwire inspect` against a node process (test/fixtures/inspect-node.ts): it shows the stalled stream first and
 * marked, with its method and slow side, the connections and the calls in flight, as tables or `--json`; `--watch`
 * refreshes until interrupted; a node without inspect is a clear error (exit 6), a node whose authorize refuses it a
 * refusal (exit 4), a missing address a usage error (exit 2), an address nobody listens on unavailable (exit 3).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { InspectSnapshot } from '../../src/index.js';
import { CLI_MAIN, runGridwire } from '../fixtures/cli.js';
import { sleep } from '../helpers.js';

const NODE = fileURLToPath(new URL('../fixtures/inspect-node.ts', import.meta.url));

/** Starts the fixture node; resolves with its address once its download is held (with inspect: stalled). Killed after the test. */
async function startNode(t: TestContext, ...args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', NODE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let out = '';
  child.stdout.setEncoding('utf8');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  try {
    for await (const chunk of child.stdout) {
      out += chunk as string;
      if (out.includes('\n')) break;
    }
  } finally {
    clearTimeout(timer);
  }
  assert.ok(out.includes('\n'), `the node started: ${stderr}`);
  return (JSON.parse(out.slice(0, out.indexOf('\n'))) as { url: string }).url;
}

void test('gridwire inspect shows the stalled stream first and marked, with its method and slow side', { timeout: 30_000 }, async (t) => {
  const url = await startNode(t, '--threshold', '200'); // once its snapshot shows the stall
  const result = await runGridwire(['inspect', url], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.split('\n');
  assert.match(lines[0]!, /^node inspected, pid \d+, .*stalled/);
  const stalledHeader = lines.findIndex((line) => /^STALLED STREAMS \(1\)$/.test(line));
  assert.ok(stalledHeader > 0, result.stdout);
  assert.match(lines[stalledHeader + 1]!, /^ +CONNECTION +STREAM +METHOD +DIRECTION +BLOCKED +SLOW SIDE$/);
  // the serving end of the download: the peer (the node's own slow reader, dialed in) is the slow side
  assert.match(lines[stalledHeader + 2]!, /^! +slow-reader \(tcp:\/\/127\.0\.0\.1:\d+\) +\d+ +test\.probe\.v1\/get +served +(\d+ms|\d+(\.\d)?s) +the peer \(it does not read/);
  assert.ok(lines.indexOf('CONNECTIONS (2)') > stalledHeader, 'the connections after the stalls (the slow reader, and ours)');
  assert.match(result.stdout, /^ {4}! +\d+ +test\.probe\.v1\/get +served +download /m, 'the stream row is marked in its connection');
  assert.match(result.stdout, /^CALLS IN FLIGHT\n {2}METHOD +MADE +SERVED\n(.*\n)*? {2}test\.probe\.v1\/get +0 +1$/m);
});

void test('gridwire inspect --json prints the snapshot; --watch refreshes it until interrupted', { timeout: 30_000 }, async (t) => {
  const url = await startNode(t, '--threshold', '100'); // once its snapshot shows the stall
  const result = await runGridwire(['inspect', url, '--json'], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, result.stderr);
  const snapshot = JSON.parse(result.stdout) as InspectSnapshot;
  assert.equal(snapshot.node, 'inspected');
  assert.equal(snapshot.stalled.length, 1);
  assert.ok(snapshot.stalled.every((s) => s.method === 'test.probe.v1/get' && s.blockedMs >= 100));

  const watcher = spawn(process.execPath, ['--import', 'tsx', CLI_MAIN, 'inspect', '--watch', '200ms', url, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => watcher.kill('SIGKILL'));
  let out = '';
  watcher.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  const deadline = performance.now() + 15_000;
  while (out.split('\n').length < 4 && performance.now() < deadline) await sleep(50); // three snapshots
  watcher.kill('SIGINT');
  const [code] = (await once(watcher, 'exit')) as [number | null];
  const snapshots = out.trim().split('\n').map((line) => JSON.parse(line) as InspectSnapshot);
  assert.ok(snapshots.length >= 3, `refreshed: ${snapshots.length} snapshots`);
  assert.ok(snapshots.at(-1)!.stalled[0]!.blockedMs > snapshots[0]!.stalled[0]!.blockedMs, 'the stall grows between refreshes');
  assert.equal(code, 130, 'interrupted');
});

void test('gridwire inspect: a node without inspect, a refusal, no address, nobody listening: clear errors and exit codes', { timeout: 30_000 }, async (t) => {
  const off = await startNode(t, '--no-inspect', '--idle');
  const offResult = await runGridwire(['inspect', off], { timeoutMs: 20_000 });
  assert.equal(offResult.code, 6, offResult.stderr);
  assert.match(offResult.stderr, /the node does not enable inspect: start it with inspect: true/);

  const refusing = await startNode(t, '--refuse-inspect', '--idle');
  const refused = await runGridwire(['inspect', refusing, '--json'], { timeoutMs: 20_000 });
  assert.equal(refused.code, 4);
  const report = JSON.parse(refused.stdout) as { ok: boolean; error: string; status: string };
  assert.equal(report.status, 'PERMISSION_DENIED');
  assert.match(report.error, /refused inspect .*inspect is not for you/);

  const usage = await runGridwire(['inspect'], { timeoutMs: 20_000 });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /inspect needs the address of a node/);

  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve)); // nobody listens there now
  const unavailable = await runGridwire(['inspect', `tcp://127.0.0.1:${port}`, '--timeout', '2s'], { timeoutMs: 20_000 });
  assert.equal(unavailable.code, 3, unavailable.stderr);
});
