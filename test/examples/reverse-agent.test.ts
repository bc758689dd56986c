/**
 * examples/reverse-agent runs with its one command and does what its README says: the agent dials, the controller
 * calls it back on that connection (unary, a server stream, a bulk download checked by sha256), the agent's channel
 * redials after the controller restarts, a call to the killed agent fails fast, and the restarted agent is called.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesWith, runExample } from './run-example.js';

void test('example reverse-agent: the controller calls the agent on its dial, across a controller restart and an agent restart', { timeout: 30_000 }, async (t) => {
  const stop = new AbortController();
  t.after(() => stop.abort()); // kills the example's process group if an assertion below throws first
  const run = await runExample('reverse-agent', { timeoutMs: 25_000, signal: stop.signal });
  const { output } = run;
  assert.equal(run.timedOut, false, `the example did not end by itself:\n${output}`);
  assert.equal(run.code, 0, `exit code ${run.code}:\n${output}`);

  const registrations = linesWith(output, /\[controller\] agent-1 registered \(pid \d+/).map((line) => Number(/pid (\d+)/.exec(line)![1]));
  assert.equal(registrations.length, 3, `three registrations (start, controller restart, agent restart):\n${output}`);
  assert.equal(registrations[0], registrations[1], 'the same agent process came back after the controller restarted');
  assert.notEqual(registrations[1], registrations[2], 'a new agent process registered after the kill');

  assert.equal(linesWith(output, 'called agent-1 back on its own connection').length, 2, output);
  assert.equal(linesWith(output, /agent-1's last log lines \(server stream\)/).length, 2, output);
  assert.equal(linesWith(output, /downloaded dump\.bin from agent-1: 8388608 bytes .* matches/).length, 2, output);
  assert.equal(linesWith(output, /redialed \d+ ms after the restart and was called back: pid \d+ \(the same process\)/).length, 1, output);
  assert.equal(linesWith(output, /a call to the killed agent fails fast: UNAVAILABLE after [\d.]+ ms/).length, 1, output);
  assert.match(output, new RegExp(`agent-1 is back: pid ${registrations[1]} -> ${registrations[2]}`));
  assert.ok(output.indexOf('called agent-1 after its restart') > output.indexOf('agent-1 is back'), output);
  assert.match(output, /reverse-agent example OK/);
});
