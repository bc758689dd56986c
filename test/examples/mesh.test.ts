/**
 * examples/mesh runs with its one command and does what its README says: four node processes in a full mesh (one
 * connection per pair), a quorum lock that refuses a second holder, an object in 3+1 parts read back by another
 * node; then one node is killed: a call to it fails fast and the lock, a PUT and the GETs still succeed with 3 of 4.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesWith, runExample } from './run-example.js';

void test('example mesh: quorum lock and 3+1 objects across 4 node processes, still working with one node killed', { timeout: 30_000 }, async (t) => {
  const stop = new AbortController();
  t.after(() => stop.abort()); // kills the example's process group if an assertion below throws first
  const run = await runExample('mesh', { timeoutMs: 25_000, signal: stop.signal });
  const { output } = run;
  assert.equal(run.timedOut, false, `the example did not end by itself:\n${output}`);
  assert.equal(run.code, 0, `exit code ${run.code}:\n${output}`);

  const meshUp = linesWith(output, /mesh up: 4 nodes, 6 connections, one per pair \(dialer->acceptor\): (\S+ ?){6}$/);
  assert.equal(meshUp.length, 1, output);

  // all four up: the lock is exclusive, and another node (n2) asks for it over the same connections
  const [first, degraded] = linesWith(output, /\[n1\] lock bucket\/photos: /);
  assert.match(first!, /ACQUIRED with 4\/4 votes \(quorum 3\)/);
  assert.match(output, /n2 tried while n1 holds it: lock bucket\/photos: REFUSED with 0\/4 votes/);
  assert.match(output, /n2 tried after n1 released it: lock bucket\/photos: ACQUIRED with 4\/4 votes/);
  assert.match(output, /PUT photos\/cat\.jpg \(3145745 bytes, 3\+1 parts\): OK with 4\/4 parts stored/);
  assert.match(output, /n3 read it: GET photos\/cat\.jpg: 3145745 bytes from 4\/4 parts, sha256 \w+\.\.\. verified/);

  // n4 killed: fail fast, and the quorum holds
  const failFast = linesWith(output, /a call to n4 fails fast: UNAVAILABLE after ([\d.]+) ms/);
  assert.equal(failFast.length, 1, output);
  const ms = Number(/after ([\d.]+) ms/.exec(failFast[0]!)![1]);
  assert.ok(ms < 1_000, `the call to the dead node failed in ${ms} ms, not at once`);
  assert.match(degraded!, /ACQUIRED with 3\/4 votes \(quorum 3\): .*n4 UNAVAILABLE in [\d.]+ ms/);
  assert.match(output, /PUT photos\/dog\.jpg \(2097152 bytes, 3\+1 parts\): OK with 3\/4 parts stored \(write quorum 3\)/);
  assert.match(output, /GET photos\/cat\.jpg: 3145745 bytes from 3\/4 parts, data part \d rebuilt from parity, sha256 \w+\.\.\. verified/);
  assert.match(output, /n3 read it: GET photos\/dog\.jpg: 2097152 bytes from 3\/4 parts.* verified/);
  assert.match(output, /the quorum held with n4 down/);
  assert.match(output, /mesh example OK/);
});
