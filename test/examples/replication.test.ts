/**
 * examples/replication runs with its one command and does what its README says: negotiation on the control lane,
 * every snapshot stream on the data lane and verified by sha256 on the sink, a control call answered mid-stream, and
 * a stream whose connection is cut refused by the sink (never taken as complete), then resent and committed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesWith, runExample } from './run-example.js';

const STREAM_BYTES = 24 * 1024 * 1024;

void test('example replication: control and data lanes, sha256 verified on the sink, a cut stream refused then resent', { timeout: 30_000 }, async (t) => {
  const stop = new AbortController();
  t.after(() => stop.abort()); // kills the example's process group if an assertion below throws first
  const run = await runExample('replication', { timeoutMs: 25_000, signal: stop.signal });
  const { output } = run;
  assert.equal(run.timedOut, false, `the example did not end by itself:\n${output}`);
  assert.equal(run.code, 0, `exit code ${run.code}:\n${output}`);

  assert.match(output, /control: sink has @s1 @s2 \([\d.]+ ms\); common base pool\/data@s2; to send: @s3 @s4/);
  const receives = linesWith(output, /\[sink\]\s+receiving pool\/data@s\d -> pool\/data@s\d on the (\S+) connection/);
  assert.equal(receives.length, 3, `three streams: @s3, the cut @s4 and its resend:\n${output}`);
  for (const line of receives) assert.match(line, /on the data connection/, 'every stream travelled on the data lane');
  assert.ok(linesWith(output, /control, mid-stream: sink has [\d.]+ MiB of pool\/data@s\d \(answered in/).length >= 1, output);

  // the cut: the sender's call fails, the sink discards what it had, the next negotiation shows @s4 missing
  assert.match(output, /cutting the data connection after 8\.0 MiB of pool\/data@s4/);
  assert.match(output, /stream pool\/data@s3 -> pool\/data@s4 failed: UNAVAILABLE/);
  const discarded = linesWith(output, /\[sink\]\s+receive of pool\/data@s4 failed after (\d+) bytes: .*staging discarded, pool\/data@s4 NOT taken/);
  assert.equal(discarded.length, 1, output);
  assert.ok(Number(/after (\d+) bytes/.exec(discarded[0]!)![1]) < STREAM_BYTES, 'the sink had received only part of the stream');
  assert.match(output, /control: sink has @s1 @s2 @s3 \([\d.]+ ms\); common base pool\/data@s3; to send: @s4/);
  const refused = output.indexOf('the cut stream was refused: the sink does not hold pool/data@s4');
  assert.ok(refused > 0, output);

  // each snapshot committed exactly once, @s4 only after the resend
  assert.equal(linesWith(output, 'committed pool/data@s3: sha256 verified').length, 1, output);
  const s4 = linesWith(output, 'committed pool/data@s4: sha256 verified');
  assert.equal(s4.length, 1, output);
  assert.ok(output.indexOf(s4[0]!) > refused, 'the cut @s4 was committed only after it was resent');
  assert.match(output, /control: sink has @s1 @s2 @s3 @s4 .* to send: nothing/);
  assert.match(output, /replication example OK/);
});
